/// When and how often a failed job runs again: exponential back-off between attempts.
///
/// Defaults follow Temporal's retry policy (1 s initial interval, ×2 per attempt, capped at
/// 100× the initial interval), with 3 attempts in all (Temporal: unlimited) and 10 % jitter.
public struct RetryPolicy: Codable, Sendable, Equatable {
    /// Attempts in all, the first included (1 = never retry).
    public var maxAttempts: Int
    /// Seconds before the first retry.
    public var initial: Double
    /// Each further delay is the previous one times this.
    public var multiplier: Double
    /// The longest delay, seconds.
    public var max: Double
    /// Fraction of the delay added or removed at random (0.1 = ±10 %), so retries of many jobs spread out.
    public var jitter: Double
    /// Which failures are retried.
    public var on: [RetryCondition]

    public static let defaultOn: [RetryCondition] = [.nonZero, .signal, .timeout]

    public init(maxAttempts: Int = 3, initial: Double = 1, multiplier: Double = 2, max: Double? = nil, jitter: Double = 0.1, on: [RetryCondition] = RetryPolicy.defaultOn) {
        self.maxAttempts = maxAttempts
        self.initial = initial
        self.multiplier = multiplier
        self.max = max ?? initial * 100
        self.jitter = jitter
        self.on = on
    }

    /// The delay before retry number `retry` (1 = the first retry), without jitter.
    public func baseDelay(retry: Int) -> Double {
        var d = initial
        if retry > 1 { for _ in 1..<retry { d *= multiplier; if d >= max { break } } }
        return Swift.min(d, max)
    }

    /// The delay before retry number `retry`, with jitter drawn from `random` (0..<1).
    public func delay(retry: Int, random: Double) -> Double {
        let base = baseDelay(retry: retry)
        return Swift.max(0, base * (1 + jitter * (2 * random - 1)))
    }

    /// Whether a failed attempt that ended this way is retried (budget aside).
    public func retries(_ failure: FailureKind) -> Bool {
        on.contains { $0.matches(failure) }
    }
}

/// One `retry.on` entry: a kind of failure, or one exit code.
public enum RetryCondition: Codable, Sendable, Equatable, CustomStringConvertible {
    /// Any exit with a code other than 0.
    case nonZero
    /// Exit with this code.
    case exitCode(Int)
    /// Killed by a signal (not by Drover).
    case signal
    /// Stopped after its timeout.
    case timeout
    /// Stopped for exceeding its memory limit.
    case resourceLimit
    /// The command could not be started (not found, bad cwd, a missing input).
    case startFailed

    /// The names used in batch files.
    public static let names: [String: RetryCondition] = [
        "non_zero": .nonZero, "signal": .signal, "timeout": .timeout, "resource_limit": .resourceLimit, "start_failed": .startFailed,
    ]

    public var description: String {
        if case .exitCode(let c) = self { return String(c) }
        return Self.names.first { $0.value == self }?.key ?? "?"
    }

    func matches(_ f: FailureKind) -> Bool {
        switch (self, f) {
        case (.nonZero, .exit(let c)): return c != 0
        case (.nonZero, .missingOutputs): return true
        case (.exitCode(let want), .exit(let c)): return want == c
        case (.signal, .signal), (.timeout, .timeout), (.resourceLimit, .resourceLimit), (.startFailed, .startFailed): return true
        default: return false
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let code = try? c.decode(Int.self) { self = .exitCode(code); return }
        let name = try c.decode(String.self)
        guard let v = Self.names[name] else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "unknown retry condition \(name)") }
        self = v
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if case .exitCode(let code) = self { try c.encode(code) } else { try c.encode(description) }
    }
}

/// How a failed attempt ended, for the retry decision.
public enum FailureKind: Sendable, Equatable {
    case exit(Int)
    case signal
    case timeout
    case resourceLimit
    case startFailed
    /// Exited 0 without writing a declared output (retried like a non-zero exit).
    case missingOutputs

    /// The failure kind of an agent's final attempt state (nil for states that are not failures of the job itself).
    public init?(agentState: String, exitCode: Int?) {
        switch agentState {
        case "exited": self = .exit(exitCode ?? 1)
        case "signaled": self = .signal
        case "timed_out": self = .timeout
        case "resource_limit": self = .resourceLimit
        case "start_failed": self = .startFailed
        default: return nil
        }
    }
}
