#ifndef DROVER_SYS_H
#define DROVER_SYS_H

#include <sys/types.h>

/// Resource limits applied in the child between fork and exec. A value < 0 leaves the limit alone.
struct drover_limits {
    long long cpu_seconds;
    long long open_files;
    long long address_space_bytes;
    long long core_bytes;
};

/// fork + exec of a job with nothing in Swift between them: new process group, all signals
/// unblocked and at their defaults, stdin/stdout/stderr replaced, cwd, limits, nice.
/// `path` without a '/' is searched in the PATH of `envp`. Returns the pid, or -1 with
/// `*child_errno` set to why the exec (or an earlier step) failed.
/// When `cgroup_procs` is not NULL, the child first writes itself into that cgroup.procs file,
/// so the job and everything it starts live in the cgroup from the first instruction.
pid_t drover_spawn_job(const char *path, char *const argv[], char *const envp[], const char *cwd,
                       int in_fd, int out_fd, int err_fd, const struct drover_limits *limits,
                       int nice_increment, const char *cgroup_procs, int *child_errno);

/// fork + setsid + exec, for the shim and the detached agent: a new session, all signals at
/// their defaults, stdin from /dev/null, stdout and stderr to `out_fd`. Returns the pid or -1.
pid_t drover_spawn_session(const char *path, char *const argv[], char *const envp[], int out_fd, int *child_errno);

/// drover_spawn_session with `in_fd` as the child's stdin (a reusable shim's handoff pipe);
/// -1 for /dev/null.
pid_t drover_spawn_session_input(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int *child_errno);

/// A pipe with both ends close-on-exec; 0, or -1 with errno.
int drover_cloexec_pipe(int fds[2]);

/// Makes this process the subreaper of its descendants (Linux); returns 0, or -1 where unsupported.
int drover_set_child_subreaper(void);

/// Decoding of wait(2) statuses (the macros do not import into Swift).
int drover_wifexited(int status);
int drover_wexitstatus(int status);
int drover_wifsignaled(int status);
int drover_wtermsig(int status);
int drover_wcoredump(int status);



/// The pid of an exited child other than `except`, reaped; 0 when there is none (Linux/macOS waitid).
pid_t drover_reap_other_child(pid_t except);

/// The read end of this process's signal pipe (created once, non-blocking, close-on-exec), or -1.
int drover_signal_pipe(void);

/// Catches `sig` (unblocked, SA_RESTART): the handler marks it pending and writes a byte to the
/// signal pipe, so a loop that polls the pipe wakes even when the signal came just before it waited.
int drover_wake_on_signal(int sig);

/// Reads everything queued in the signal pipe (call before `drover_take_signal`).
void drover_drain_signal_pipe(void);

/// 1 when `sig` arrived since the last call (and clears it), else 0.
int drover_take_signal(int sig);

/// A descriptor that becomes readable when process `pid` exits (Linux: a pidfd, kernel 5.3 and
/// later); -1 with errno ESRCH when it is gone, ENOSYS where there is no such thing.
int drover_open_exit_handle(pid_t pid);

/// syncfs(2) on Linux (flush the whole file system holding `fd`), fsync elsewhere.
int drover_syncfs(int fd);

/// Hands the allocator's free memory back to the system (glibc's malloc_trim(0)): after a
/// large transient peak, so the resident size falls back. Returns 1 when memory was released,
/// 0 when none was or the platform keeps none back this way.
int drover_release_free_memory(void);

/// Bytes the allocator has handed out and not had back (glibc's mallinfo2: small blocks in
/// use plus mmapped ones; macOS: the default zone's size in use). Unlike the resident size it
/// falls when memory is freed, so a leak shows in it and the allocator's kept free memory
/// does not. -1 where the platform cannot tell.
long long drover_heap_in_use(void);

#endif
