import CDroverSys
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Signals turned into a readable descriptor (the self-pipe trick), so a loop that sleeps in
/// `FileWatch.wait` wakes for them without a race: the handler writes to the pipe, and a
/// signal that arrives before the wait leaves the pipe readable.
struct SignalWake {
    /// The pipe's read end, to pass to `FileWatch.watch(descriptor:)`.
    let descriptor: Int32

    /// Catches `signals` from now on (one pipe per process, shared by every caller).
    init(_ signals: [Int32]) throws(SystemError) {
        let fd = drover_signal_pipe()
        if fd < 0 { throw SystemError.current("create the signal pipe", path: nil) }
        for s in signals where drover_wake_on_signal(s) != 0 {
            throw SystemError.current("catch signal \(s)", path: nil)
        }
        descriptor = fd
    }

    /// Empties the pipe; call once per wake, before `take`.
    func drain() { drover_drain_signal_pipe() }

    /// Whether `signal` arrived since the last `take` of it.
    func take(_ signal: Int32) -> Bool { drover_take_signal(signal) != 0 }
}

/// Exited children collected by `reapChildren`, kept until the supervisor takes them: it
/// learns from them which of its shims have ended, whoever did the reaping.
enum ReapedChildren {
    nonisolated(unsafe) static var recording = false
    nonisolated(unsafe) private static var pids: [pid_t] = []

    static func note(_ pid: pid_t) { if recording { pids.append(pid) } }

    /// The pids reaped since the last call.
    static func take() -> Set<pid_t> {
        defer { pids.removeAll() }
        return Set(pids)
    }
}
