#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds and kills every process of an attempt: its process group, the descendants of its
/// shim (which, as subreaper, inherits the ones that double-forked), and anything carrying
/// its environment cookie (what escaped with `setsid` and a re-parent elsewhere).
struct TreeKiller {
    let table: any ProcessTable
    let cookie: String

    /// Pids that belong to the attempt now.
    func members(pgid: pid_t?, ancestor: pid_t?) -> Set<pid_t> {
        var found = Set<pid_t>()
        let snapshot = table.snapshot()
        if let pgid, pgid > 1 { for p in snapshot where p.pgid == pgid { found.insert(p.pid) } }
        if let ancestor {
            var parents: Set<pid_t> = [ancestor]
            var changed = true
            while changed {
                changed = false
                for p in snapshot where parents.contains(p.ppid) && !parents.contains(p.pid) {
                    parents.insert(p.pid)
                    found.insert(p.pid)
                    changed = true
                }
            }
        }
        for (pid, c) in table.cookies(withPrefix: cookie) where c == cookie { found.insert(pid) }
        found.remove(getpid())
        if let ancestor { found.remove(ancestor) }
        return found
    }

    /// Sends `signal` to every member; returns how many there were.
    @discardableResult
    func signalAll(_ signal: Int32, pgid: pid_t?, ancestor: pid_t?) -> Int {
        if let pgid, pgid > 1 { kill(-pgid, signal) }
        let pids = members(pgid: pgid, ancestor: ancestor)
        for pid in pids { kill(pid, signal) }
        return pids.count
    }

    /// SIGKILLs members until none is left (or `deadline` seconds pass), reaping our own
    /// children; returns how many distinct processes were killed.
    func killAll(pgid: pid_t?, ancestor: pid_t?, deadline: Double = 5) -> Int {
        let end = monotonicTime() + deadline
        var killed = Set<pid_t>()
        while true {
            if let pgid, pgid > 1 { kill(-pgid, SIGKILL) }
            let pids = members(pgid: pgid, ancestor: ancestor)
            reapChildren()
            if pids.isEmpty || monotonicTime() > end { break }
            for pid in pids {
                kill(pid, SIGKILL)
                killed.insert(pid)
            }
            sleepSeconds(0.01)
            reapChildren()
        }
        return killed.count
    }
}

/// Collects every exited child without blocking (zombies of adopted orphans, shims).
func reapChildren() {
    var status: Int32 = 0
    while waitpid(-1, &status, WNOHANG) > 0 {}
}
