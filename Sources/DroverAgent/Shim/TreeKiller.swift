#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds and kills every process of an attempt: its process group, the descendants of its
/// shim (which, as subreaper, inherits the ones that double-forked), and anything carrying
/// its environment cookie (what escaped with `setsid` and a re-parent elsewhere).
///
/// The cookie scan reads every process's environment, which costs milliseconds per attempt
/// on a busy machine. A live shim that is its job's subreaper does not need it: no
/// descendant can leave its subtree (an orphan is re-parented to the nearest subreaper
/// ancestor), so its descendants are every process the job started. The scan is for the
/// shim without a subreaper (other platforms) and for the agent cleaning up after a shim
/// that is gone.
struct TreeKiller {
    let table: any ProcessTable
    let cookie: String
    /// Whether to look for the cookie in every process's environment (see above).
    var scansCookies = true
    /// Only processes started at or after this start time can carry the cookie (cheaper scans).
    var startedAfter: String? = nil
    /// The attempt's cgroup, where there is one.
    var cgroup: JobCgroup? = nil

    /// Pids that belong to the attempt now: the shim's descendants (which, the shim being
    /// subreaper, include everything double-forked) and the cookie carriers.
    func members(ancestor: pid_t?) -> Set<pid_t> {
        var found = ancestor.map { table.descendants(of: $0) } ?? []
        if scansCookies || ancestor == nil {
            for (pid, c) in table.cookies(withPrefix: cookie, startedAfter: startedAfter) where c == cookie { found.insert(pid) }
        }
        if let cgroup { found.formUnion(cgroup.pids()) }
        found.remove(getpid())
        if let ancestor { found.remove(ancestor) }
        return found
    }

    /// Sends `signal` to the process group and every member; returns how many members there were.
    @discardableResult
    func signalAll(_ signal: Int32, pgid: pid_t?, ancestor: pid_t?) -> Int {
        if let pgid, pgid > 1 { kill(-pgid, signal) }
        let pids = members(ancestor: ancestor)
        for pid in pids { kill(pid, signal) }
        return pids.count
    }

    /// SIGKILLs the group and the members until none is left (or `deadline` seconds pass),
    /// reaping our own children; returns how many distinct processes were killed.
    func killAll(pgid: pid_t?, ancestor: pid_t?, deadline: Double = 5) -> Int {
        let end = monotonicTime() + deadline
        var killed = Set<pid_t>()
        while true {
            reapChildren()
            let pids = members(ancestor: ancestor)
            let groupLeft = pgid.map { $0 > 1 && kill(-$0, 0) == 0 } ?? false
            if (pids.isEmpty && !groupLeft) || monotonicTime() > end { break }
            if let pgid, pgid > 1 { kill(-pgid, SIGKILL) }
            cgroup?.killAll()
            for pid in pids {
                kill(pid, SIGKILL)
                killed.insert(pid)
            }
            sleepSeconds(0.005)
        }
        return killed.count
    }
}

/// Collects every exited child without blocking (zombies of adopted orphans, shims), noting
/// each in `ReapedChildren`.
func reapChildren() {
    var status: Int32 = 0
    while true {
        let pid = waitpid(-1, &status, WNOHANG)
        if pid <= 0 { return }
        ReapedChildren.note(pid)
    }
}
