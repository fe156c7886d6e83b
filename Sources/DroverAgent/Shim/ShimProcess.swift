import CDroverSys
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One shim process: `drover-agent shim ROOT JOB/ATTEMPT [--reuse]`.
///
/// It runs its first attempt and, with `--reuse`, every further attempt the agent hands it
/// on its stdin (a pipe from the agent): one line `JOB/ATTEMPT` each, read only between
/// attempts. The pipe's end (the agent retired the idle shim, or the agent is gone) ends the
/// shim. What a shim sets up once for its life — the signal pipe, the file watch, the
/// subreaper — is kept; everything of an attempt (its lock, cgroup, files, limits,
/// environment, working directory) is made anew for each.
enum ShimProcess {
    static func run(dir: StateDirectory, first: AttemptID, reuse: Bool) -> Int32 {
        AgentLog.path = dir.agentLog
        let context = ShimContext()
        var code = Shim(dir: dir, id: first, context: context).run()
        guard reuse else { return code }
        var handoff = HandoffReader(fd: 0)
        // A shim that could not record its attempt's end (a full disk) exits instead of
        // waiting for another: its exit is how the agent learns that the attempt needs the
        // agent to end it (found by the soak's disk-full fault: a reused shim that stayed
        // idle left its attempt `running` for good).
        while code == 0, let line = handoff.nextLine() {
            guard let id = AttemptID(line) else {
                AgentLog.write("shim \(getpid()): ignoring a handoff line that names no attempt: \(line)")
                continue
            }
            code = Shim(dir: dir, id: id, context: context).run()
        }
        return code
    }
}

/// What a shim process keeps over its attempts.
final class ShimContext {
    let portable = Platform.processes is PortableProcessTable
    /// Whether this process is the child subreaper of everything its jobs start.
    let subreaper: Bool
    /// SIGCHLD as a readable descriptor (nil when the pipe could not be made: polled then).
    let signals: SignalWake?
    let watch: FileWatch
    /// This process's start time (with its pid, its identity in the `starting` transition).
    let start: String?

    init() {
        subreaper = !portable && drover_set_child_subreaper() == 0
        signals = try? SignalWake([SIGCHLD])
        watch = Self.makeWatch()
        if let signals { watch.watch(descriptor: signals.descriptor) }
        start = Platform.processes.startTime(of: getpid())
    }

    /// The kernel's watch; where it cannot be had (e.g. the user's inotify instances are used
    /// up), polling every 50 ms rather than the fallback's 0.5 s, so a cancel is still prompt.
    private static func makeWatch() -> FileWatch {
        let watch = FileWatch.forAgent()
        if case .polling = watch.mechanism, LocalUser.environment("DROVER_AGENT_FILEWATCH") == nil {
            AgentLog.write("shim \(getpid()): polling its attempt's folder every 50 ms (\(watch.fallbackReason ?? "no kernel watch"))")
            return FileWatch(pollingEvery: 0.05)
        }
        return watch
    }
}

/// Lines from the agent's handoff pipe, read with blocking reads (the shim has nothing else
/// to do between attempts); nil at the pipe's end.
struct HandoffReader {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(fd: Int32) { self.fd = fd }

    mutating func nextLine() -> String? {
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                return line
            }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                buffer += chunk[..<n]
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return nil
            }
        }
    }
}
