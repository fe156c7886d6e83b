import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `drover-agent run [--detach]`: the daemon.
enum RunCommand {
    static func run(_ options: inout Options) throws(AgentError) -> Int32 {
        try options.allow(["--detach"])
        let dir = options.root
        let interval = Double(options.values["--heartbeat-interval"] ?? "1") ?? 0
        guard interval >= 0.05, interval <= 60 else { throw .usage("--heartbeat-interval must be between 0.05 and 60 seconds") }
        try dir.prepare()
        // An agent of another machine (a home shared over NFS, where the lock below may not
        // reach across machines) must not be joined or displaced while it beats.
        try Ownership.checkNotForeign(dir)
        if let holder = AgentLock.holder(dir) { return try AgentLock.alreadyRunning(dir, holder: holder) }
        if options.flags.contains("--detach") {
            let pid = try spawnSession([currentExecutable(), "run", "--root", dir.root, "--heartbeat-interval", String(interval)], output: dir.agentLog)
            let end = monotonicTime() + 10
            while monotonicTime() < end {
                if let hb = readJSON(dir.heartbeatFile), hb["pid"]?.intValue == Int(pid) {
                    print("drover-agent started in \(dir.root) (pid \(pid))")
                    return 0
                }
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    // It exited: another agent won the lock, or it failed (see agent.log).
                    if let holder = AgentLock.holder(dir) { return try AgentLock.alreadyRunning(dir, holder: holder) }
                    throw .invalid("the agent exited at start; see \(dir.agentLog)")
                }
                sleepSeconds(0.01)
            }
            throw .invalid("no first heartbeat from pid \(pid) within 10 s; see \(dir.agentLog)")
        }
        guard let lock = try AgentLock.acquire(dir) else { return try AgentLock.alreadyRunning(dir, holder: AgentLock.holder(dir) ?? -1) }
        defer { close(lock) }
        AgentLog.path = dir.agentLog
        let claim = try Ownership.claim(dir)
        try Supervisor(dir: dir, heartbeatInterval: interval, claim: claim).run()
        return 0
    }
}

/// One agent per root: a `PIDLock` on `agent.lock`.
enum AgentLock {
    /// Takes the lock; nil when another process holds it. The descriptor must stay open.
    static func acquire(_ dir: StateDirectory) throws(AgentError) -> Int32? {
        do { return try PIDLock.acquire(dir.lockFile) } catch { throw .system(error) }
    }

    /// The pid of the running agent, or nil when none holds the lock.
    static func holder(_ dir: StateDirectory) -> pid_t? {
        PIDLock.holder(dir.lockFile)
    }

    /// `run` when the lock is taken: success once its holder is the agent that beats in this
    /// root (a starting one gets 10 s for its first beat); an error naming the lock when
    /// something else holds it — a process that is no agent, or one whose pid the lock file
    /// no longer names — since the coordinator would otherwise wait for heartbeats that never
    /// come. The holder is read again on each change: a starting agent takes the lock before
    /// it writes its pid into the file.
    static func alreadyRunning(_ dir: StateDirectory, holder first: pid_t) throws(AgentError) -> Int32 {
        func beating(_ pid: pid_t) -> Bool { readJSON(dir.heartbeatFile)?["pid"]?.intValue == Int(pid) }
        func alive(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 || errno == EPERM }
        let watch = FileWatch.forAgent()
        watch.watch(dir.root, entries: ["heartbeat"])
        watch.watch(dir.lockFile)
        let end = monotonicTime() + 10
        var holder: pid_t? = first
        while let pid = holder, monotonicTime() < end {
            if pid > 0 {
                guard alive(pid) else { break }
                if beating(pid) {
                    print("drover-agent already running in \(dir.root) (pid \(pid))")
                    return 0
                }
            }
            _ = watch.wait(timeout: max(0, end - monotonicTime()))
            holder = AgentLock.holder(dir)
        }
        guard let pid = holder else {
            throw .invalid("the agent that held \(dir.lockFile) exited before its first heartbeat; see \(dir.agentLog)")
        }
        let named = pid > 0 ? "pid \(pid), \(alive(pid) ? "which writes no heartbeat here" : "which is gone")" : "no pid"
        throw .invalid("\(dir.lockFile) is locked by a process that is not this root's running agent (the lock file names \(named)); find the holder with `fuser -v \(dir.lockFile)` and stop it, then start the agent again")
    }
}
