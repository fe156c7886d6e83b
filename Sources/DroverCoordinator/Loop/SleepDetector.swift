/// Notices that the coordinator itself did not run for a while — its machine slept, the
/// process was stopped (SIGSTOP, a closed laptop lid, a debugger), or the wall clock jumped
/// ahead of the monotonic one — so that silence the coordinator caused is never blamed on
/// the hosts (docs/failures.md, "The coordinator sleeps").
///
/// The loop calls `check` at its checkpoints and `willWait` before it sleeps until its next
/// deadline; a checkpoint reached much later than the loop could have been there is a gap.
public struct SleepDetector: Sendable {
    /// How a gap was noticed.
    public enum Cause: String, Sendable {
        /// The loop ran (or woke from its wait) far later than its deadline.
        case lateWake = "its loop woke late"
        /// The wall clock advanced far more than the monotonic clock (a suspend the monotonic clock did not count).
        case wallJump = "the wall clock jumped ahead of the monotonic clock"
    }

    /// A stretch of time the coordinator did not run.
    public struct Gap: Sendable, Equatable {
        public var seconds: Double
        public var cause: Cause
    }

    /// Lateness (seconds) that counts as a gap; smaller delays are ordinary scheduling.
    public let threshold: Double
    private var lastMonotonic: Double
    private var lastWall: Double
    /// The monotonic time the current wait was meant to end, if the loop is waiting.
    private var waitDeadline: Double?

    /// The threshold for a coordinator whose hosts are `down` after `deadAfter` seconds:
    /// half of it (at least 1 s, at most 5 s), so no gap long enough to matter goes unseen.
    public static func threshold(deadAfter: Double) -> Double { max(1, min(deadAfter / 2, 5)) }

    public init(threshold: Double, monotonic: Double, wall: Double) {
        self.threshold = threshold
        lastMonotonic = monotonic
        lastWall = wall
    }

    /// The loop is about to wait until `deadline` (monotonic seconds) or a ring.
    public mutating func willWait(until deadline: Double) {
        waitDeadline = deadline
    }

    /// A checkpoint of the loop: the gap since the previous one, if the coordinator did not run
    /// for longer than `threshold` beyond what it planned.
    public mutating func check(monotonic: Double, wall: Double) -> Gap? {
        let due = max(waitDeadline ?? lastMonotonic, lastMonotonic)
        let late = monotonic - due
        let jump = (wall - lastWall) - (monotonic - lastMonotonic)
        lastMonotonic = monotonic
        lastWall = wall
        waitDeadline = nil
        if late > threshold { return Gap(seconds: late, cause: .lateWake) }
        if jump > threshold { return Gap(seconds: jump, cause: .wallJump) }
        return nil
    }
}
