#define _GNU_SOURCE
#include "drover_sys.h"

#include <errno.h>
#include <spawn.h>
#include <time.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

/* A pipe whose ends close on exec (pipe2 is not on macOS). */
static int cloexec_pipe(int fds[2]) {
    if (pipe(fds) != 0) return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
}

static void reset_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        signal(s, SIG_DFL);
    }
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void report_and_exit(int fd, int err) {
    ssize_t unused = write(fd, &err, sizeof err);
    (void)unused;
    _exit(127);
}

static const char *env_lookup(char *const envp[], const char *name) {
    size_t n = strlen(name);
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    }
    return NULL;
}

/* execve, searching PATH (from envp) when path has no '/', as execvpe would. */
static void exec_search(const char *path, char *const argv[], char *const envp[]) {
    if (strchr(path, '/')) {
        execve(path, argv, envp);
        return;
    }
    const char *search = env_lookup(envp, "PATH");
    if (!search) search = "/usr/local/bin:/usr/bin:/bin";
    char buf[4096];
    int saved = ENOENT;
    while (*search) {
        const char *colon = strchr(search, ':');
        size_t len = colon ? (size_t)(colon - search) : strlen(search);
        if (len == 0) { buf[0] = '.'; len = 1; } else if (len < sizeof buf - 2) { memcpy(buf, search, len); }
        if (len + strlen(path) + 2 < sizeof buf) {
            buf[len] = '/';
            strcpy(buf + len + 1, path);
            execve(buf, argv, envp);
            if (errno != ENOENT && errno != ENOTDIR) saved = errno;
        }
        if (!colon) break;
        search = colon + 1;
    }
    errno = saved;
}

static int set_limit(int resource, long long value) {
    if (value < 0) return 0;
    struct rlimit rl;
    rl.rlim_cur = (rlim_t)value;
    rl.rlim_max = (rlim_t)value;
    if (resource == RLIMIT_CPU) rl.rlim_max = (rlim_t)value + 5; /* SIGXCPU first, SIGKILL later */
    return setrlimit(resource, &rl);
}

/* Waits for the child's report: 0 when exec succeeded (the pipe closed on exec). */
static int read_child_error(int fd) {
    int err = 0;
    ssize_t n;
    do { n = read(fd, &err, sizeof err); } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof err ? err : 0;
}

pid_t drover_spawn_job(const char *path, char *const argv[], char *const envp[], const char *cwd,
                       int in_fd, int out_fd, int err_fd, const struct drover_limits *limits,
                       int nice_increment, const char *cgroup_procs, int *child_errno) {
    int report[2];
    if (cloexec_pipe(report) != 0) { *child_errno = errno; return -1; }
    pid_t pid = fork();
    if (pid < 0) { *child_errno = errno; close(report[0]); close(report[1]); return -1; }
    if (pid == 0) {
        close(report[0]);
        reset_signals();
        if (cgroup_procs) {
            int fd = open(cgroup_procs, O_WRONLY | O_CLOEXEC);
            if (fd < 0 || write(fd, "0", 1) != 1) report_and_exit(report[1], errno);
            close(fd);
        }
        setpgid(0, 0);
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) report_and_exit(report[1], errno);
        if (cwd && *cwd && chdir(cwd) != 0) report_and_exit(report[1], errno);
        if (limits) {
            if (set_limit(RLIMIT_CPU, limits->cpu_seconds) != 0) report_and_exit(report[1], errno);
            if (set_limit(RLIMIT_NOFILE, limits->open_files) != 0) report_and_exit(report[1], errno);
            if (set_limit(RLIMIT_AS, limits->address_space_bytes) != 0) report_and_exit(report[1], errno);
            if (set_limit(RLIMIT_CORE, limits->core_bytes) != 0) report_and_exit(report[1], errno);
        }
        if (nice_increment > 0) {
            errno = 0;
            if (nice(nice_increment) == -1 && errno != 0) report_and_exit(report[1], errno);
        }
        exec_search(path, argv, envp);
        report_and_exit(report[1], errno);
    }
    close(report[1]);
    int err = read_child_error(report[0]);
    close(report[0]);
    if (err != 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *child_errno = err;
        return -1;
    }
    return pid;
}

pid_t drover_spawn_session(const char *path, char *const argv[], char *const envp[], int out_fd, int *child_errno) {
    return drover_spawn_session_input(path, argv, envp, -1, out_fd, child_errno);
}

pid_t drover_spawn_session_input(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int *child_errno) {
    /* posix_spawn (vfork-like, cheap for the parent) with a new session and clean signals. */
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    if (in_fd >= 0) {
        posix_spawn_file_actions_adddup2(&actions, in_fd, 0);
    } else {
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
    posix_spawn_file_actions_adddup2(&actions, out_fd, 2);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, path, &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) { *child_errno = rc; return -1; }
    return pid;
}

int drover_cloexec_pipe(int fds[2]) {
#ifdef __linux__
    return pipe2(fds, O_CLOEXEC);
#else
    if (pipe(fds) != 0) return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}

int drover_set_child_subreaper(void) {
#ifdef __linux__
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int drover_wifexited(int status) { return WIFEXITED(status); }
int drover_wexitstatus(int status) { return WEXITSTATUS(status); }
int drover_wifsignaled(int status) { return WIFSIGNALED(status); }
int drover_wtermsig(int status) { return WTERMSIG(status); }
int drover_wcoredump(int status) {
#ifdef WCOREDUMP
    return WCOREDUMP(status);
#else
    return 0;
#endif
}

pid_t drover_reap_other_child(pid_t except) {
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return 0;
        pid_t pid = info.si_pid;
        if (pid == 0 || pid == except) return 0;
        int status;
        waitpid(pid, &status, WNOHANG);
        return pid;
    }
}

int drover_syncfs(int fd) {
#ifdef __linux__
    return syncfs(fd);
#else
    return fsync(fd);
#endif
}

/* Signals as wake-ups: the handler records the signal and writes a byte to a pipe that the
   waiting loop polls, so a signal that arrives just before the wait still ends it. */
static volatile sig_atomic_t wake_write_fd = -1;
static int wake_read_fd = -1;
static volatile sig_atomic_t wake_pending[NSIG];

static void wake_handler(int sig) {
    int saved = errno;
    if (sig > 0 && sig < NSIG) wake_pending[sig] = 1;
    int fd = wake_write_fd;
    if (fd >= 0) {
        char b = (char)sig;
        ssize_t unused = write(fd, &b, 1);
        (void)unused;
    }
    errno = saved;
}

int drover_signal_pipe(void) {
    if (wake_read_fd >= 0) return wake_read_fd;
    int fds[2];
    if (cloexec_pipe(fds) != 0) return -1;
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    wake_read_fd = fds[0];
    wake_write_fd = fds[1];
    return fds[0];
}

int drover_wake_on_signal(int sig) {
    if (sig <= 0 || sig >= NSIG || drover_signal_pipe() < 0) { errno = EINVAL; return -1; }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = wake_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | (sig == SIGCHLD ? SA_NOCLDSTOP : 0);
    if (sigaction(sig, &sa, NULL) != 0) return -1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    return sigprocmask(SIG_UNBLOCK, &set, NULL);
}

void drover_drain_signal_pipe(void) {
    if (wake_read_fd < 0) return;
    char buf[256];
    while (read(wake_read_fd, buf, sizeof buf) > 0) {}
}

int drover_take_signal(int sig) {
    if (sig <= 0 || sig >= NSIG || !wake_pending[sig]) return 0;
    wake_pending[sig] = 0;
    return 1;
}

int drover_open_exit_handle(pid_t pid) {
#ifdef __linux__
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

#if defined(__GLIBC__)
#include <malloc.h>
int drover_release_free_memory(void) { return malloc_trim(0); }
#else
int drover_release_free_memory(void) { return 0; }
#endif

#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 33)
long long drover_heap_in_use(void) {
    struct mallinfo2 m = mallinfo2();
    return (long long)(m.uordblks + m.hblkhd);
}
#elif defined(__APPLE__)
#include <malloc/malloc.h>
long long drover_heap_in_use(void) {
    malloc_statistics_t s;
    malloc_zone_statistics(NULL, &s);
    return (long long)s.size_in_use;
}
#else
long long drover_heap_in_use(void) { return -1; }
#endif
