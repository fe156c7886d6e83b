/// A host's liveness from the arrival of its heartbeats, judged on the coordinator's
/// monotonic clock: `up` while the heartbeat sequence advances, `suspect` after 3 missed
/// intervals, `down` after `deadAfter` seconds without an advance.
public struct HostLiveness: Sendable {
    public enum State: String, Sendable { case connecting, up, suspect, down }

    public var deadAfter: Double
    /// The agent's heartbeat interval (from its heartbeat), seconds.
    public var interval: Double = 1
    /// When the sequence last advanced (monotonic seconds), or when watching began.
    public private(set) var lastAdvance: Double
    public private(set) var lastSeq: Int?
    public private(set) var lastPID: Int?
    /// Whether any beat was seen since watching began.
    public private(set) var seen = false

    public init(deadAfter: Double, since now: Double) {
        self.deadAfter = deadAfter
        self.lastAdvance = now
    }

    /// Records a heartbeat; only a new sequence (or a new agent process) counts as life.
    public mutating func observe(seq: Int, pid: Int?, interval: Double?, at now: Double) {
        if let interval, interval > 0 { self.interval = interval }
        if seq != lastSeq || pid != lastPID {
            lastSeq = seq
            lastPID = pid
            lastAdvance = now
            seen = true
        }
    }

    /// The coordinator itself was asleep or stopped: the silence is its own, so the host's
    /// clock starts again at `now`, with `grace` seconds more to report before it can be
    /// suspect or down. (The caller leaves hosts it had declared down before the sleep alone.)
    public mutating func excuse(at now: Double, grace: Double) {
        lastAdvance = max(lastAdvance, now + grace)
    }

    /// When `state` would next change if no heartbeat came (nil: it is down and stays so).
    public func nextChange(after now: Double) -> Double? {
        let suspectAt = lastAdvance + 3 * interval + 0.5
        switch state(at: now) {
        case .up: return min(suspectAt, lastAdvance + deadAfter)
        case .connecting, .suspect: return lastAdvance + deadAfter
        case .down: return nil
        }
    }

    /// The state at `now`.
    public func state(at now: Double) -> State {
        let age = now - lastAdvance
        if age >= deadAfter { return .down }
        if !seen { return .connecting }
        if age > 3 * interval + 0.5 { return .suspect }
        return .up
    }
}
