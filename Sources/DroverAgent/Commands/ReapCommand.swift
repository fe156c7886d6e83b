import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `drover-agent reap [--dry-run]`: kill processes that carry this root's cookie but belong
/// to no live attempt (their shim is gone), and say what was killed.
enum ReapCommand {
    static func run(_ options: inout Options) throws(AgentError) -> Int32 {
        try options.allow(["--dry-run"])
        let dir = options.root
        let table = Platform.processes
        let dry = options.flags.contains("--dry-run")
        var byAttempt: [String: [pid_t]] = [:]
        for (pid, cookie) in table.cookies(withPrefix: dir.cookiePrefix) where pid != getpid() {
            byAttempt[String(cookie.dropFirst(dir.cookiePrefix.count)), default: []].append(pid)
        }
        var total = 0
        for key in byAttempt.keys.sorted() {
            guard let id = AttemptID(key) else { continue }
            if isLive(id, dir: dir, table: table) { continue }
            let pids = byAttempt[key]!.sorted()
            total += pids.count
            if !dry { for pid in pids { kill(pid, SIGKILL) } }
            print("\(dry ? "would kill" : "killed") \(pids.map(String.init).joined(separator: " ")) (\(id): no live attempt)")
        }
        if total == 0 { print("nothing to reap") }
        return 0
    }

    /// Whether an attempt is still supervised: not final, and its shim alive with its start time.
    static func isLive(_ id: AttemptID, dir: StateDirectory, table: any ProcessTable) -> Bool {
        let p = AttemptProcesses(transitionsFile: dir.transitionsFile(id))
        guard p.state?.isFinal == false, let pid = p.shimPID, kill(pid, 0) == 0 else { return false }
        return p.shimStart == nil || table.startTime(of: pid) == p.shimStart
    }
}
