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
        if let holder = AgentLock.holder(dir) {
            print("drover-agent already running in \(dir.root) (pid \(holder))")
            return 0
        }
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
                    if let holder = AgentLock.holder(dir) {
                        print("drover-agent already running in \(dir.root) (pid \(holder))")
                        return 0
                    }
                    throw .invalid("the agent exited at start; see \(dir.agentLog)")
                }
                sleepSeconds(0.01)
            }
            throw .invalid("no first heartbeat from pid \(pid) within 10 s; see \(dir.agentLog)")
        }
        guard let lock = try AgentLock.acquire(dir) else {
            print("drover-agent already running in \(dir.root) (pid \(AgentLock.holder(dir).map(String.init) ?? "?"))")
            return 0
        }
        defer { close(lock) }
        AgentLog.path = dir.agentLog
        try Supervisor(dir: dir, heartbeatInterval: interval).run()
        return 0
    }
}

/// One agent per root: an flock on `agent.lock`, which holds the owner's pid.
enum AgentLock {
    /// Takes the lock; nil when another process holds it. The descriptor must stay open.
    static func acquire(_ dir: StateDirectory) throws(AgentError) -> Int32? {
        let fd = open(dir.lockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 { throw .system(.current("open", path: dir.lockFile)) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            return nil
        }
        ftruncate(fd, 0)
        let text = Array("\(getpid())\n".utf8)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return fd
    }

    /// The pid of the running agent, or nil when none holds the lock.
    static func holder(_ dir: StateDirectory) -> pid_t? {
        let fd = open(dir.lockFile, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        guard let bytes = try? LocalFile.read(dir.lockFile) else { return -1 }
        return pid_t(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: "\n ")) ?? -1
    }
}
