/// The life of an attempt: accepted → starting → running → one final state.
public enum AttemptState: String, Sendable, CaseIterable {
    case accepted, starting, running
    /// The command exited by itself (any exit code).
    case exited
    /// The command was killed by a signal nobody at Drover sent.
    case signaled
    /// The wall-clock timeout ran out.
    case timedOut = "timed_out"
    /// Someone cancelled it.
    case cancelled
    /// A memory or CPU limit stopped it.
    case resourceLimit = "resource_limit"
    /// The coordinator's lease ran out (dead man's switch).
    case orphaned
    /// Its shim vanished without a result (killed, or the host rebooted).
    case lost
    /// The command could not be started (not found, bad cwd, …).
    case startFailed = "start_failed"

    public var isFinal: Bool {
        switch self {
        case .accepted, .starting, .running: return false
        default: return true
        }
    }

    /// Whether the state machine allows going from `self` to `next`.
    public func canMove(to next: AttemptState) -> Bool {
        switch (self, next) {
        case (.accepted, .starting): return true
        case (.starting, .running): return true
        case (.starting, .startFailed), (.starting, .cancelled), (.starting, .orphaned): return true
        case (.accepted, .cancelled), (.accepted, .orphaned), (.accepted, .lost): return true
        case (.starting, .lost), (.running, .lost): return true
        case (.running, let f) where f.isFinal && f != .startFailed: return true
        default: return false
        }
    }
}
