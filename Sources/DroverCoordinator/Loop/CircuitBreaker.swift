import DroverInventory

/// One ended attempt on a host, as the circuit breaker judges it.
public struct BreakerAttempt: Sendable, Equatable {
    /// How the job fared on the other hosts it ran on.
    public enum Elsewhere: Sendable, Equatable {
        /// It ran nowhere else yet.
        case nowhere
        /// It succeeded (or ended without a failure) on at least one other host.
        case notFailing
        /// It failed on every other host it ran on: the job's fault, not the host's.
        case failedEverywhere
    }

    public var job: Int
    public var attempt: Int
    /// The agent's final state (`exited`, `signaled`, `timed_out`, …).
    public var state: String
    public var exitCode: Int?
    public var signal: String?
    /// From start (or dispatch, when it never ran) to end.
    public var seconds: Double
    /// Unix seconds.
    public var endedAt: Double
    /// The first line(s) of its stderr, when the coordinator has them.
    public var stderrHead: String?
    public var elsewhere: Elsewhere = .nowhere

    public init(job: Int, attempt: Int, state: String, exitCode: Int?, signal: String? = nil, seconds: Double, endedAt: Double,
                stderrHead: String? = nil, elsewhere: Elsewhere = .nowhere) {
        self.job = job
        self.attempt = attempt
        self.state = state
        self.exitCode = exitCode
        self.signal = signal
        self.seconds = seconds
        self.endedAt = endedAt
        self.stderrHead = stderrHead
        self.elsewhere = elsewhere
    }

    /// Whether the attempt failed in a way that may be the host's fault (ignoring its duration).
    public var isFailure: Bool {
        switch state {
        case "exited": return exitCode != 0
        case "signaled", "start_failed": return true
        default: return false
        }
    }

    /// "exit 127", "signal SIGSEGV", "start failed".
    public var outcome: String {
        switch state {
        case "exited": return "exit \(exitCode ?? -1)"
        case "signaled": return "signal \(signal ?? "?")"
        case "start_failed": return "start failed"
        default: return state
        }
    }
}

/// The per-host circuit breaker's decisions (docs/failures.md, "Black-hole hosts"): pure
/// functions of a host's recent attempts, so a restarted coordinator decides the same.
public enum CircuitBreaker {
    /// What one attempt means for its host's streak of failures.
    public enum Verdict: Sendable, Equatable {
        /// A success: the streak is over.
        case success
        /// A quick failure that is not the job's own fault: it counts.
        case counts
        /// A failure that ran long: the host ran the job for a while, so the streak is over.
        case ranLong
        /// Says nothing about the host: cancelled, timed out, lost, orphaned, over its memory
        /// limit, or a job that fails on every other host too.
        case ignored
    }

    public static func verdict(_ a: BreakerAttempt, settings: QuarantineSettings) -> Verdict {
        if a.state == "exited" && a.exitCode == 0 { return .success }
        guard a.isFailure else { return .ignored }
        if a.elsewhere == .failedEverywhere { return .ignored }
        return a.seconds < settings.short ? .counts : .ranLong
    }

    /// The evidence that trips the breaker: the newest failure of each of `settings.failures`
    /// different jobs, when the host's attempts (newest first) that ended after `since` and
    /// within `settings.within` of `now` hold that many counted failures in a row; else nil.
    public static func evidence(_ newestFirst: [BreakerAttempt], settings: QuarantineSettings, now: Double, since: Double = 0) -> [BreakerAttempt]? {
        var found: [BreakerAttempt] = []
        var jobs: Set<Int> = []
        for a in newestFirst {
            guard a.endedAt > since, now - a.endedAt <= settings.within else { break }
            switch verdict(a, settings: settings) {
            case .success, .ranLong: return nil
            case .ignored: continue
            case .counts:
                if jobs.insert(a.job).inserted { found.append(a) }
                if found.count >= settings.failures { return found }
            }
        }
        return nil
    }

    /// How the job of an attempt fared on other hosts, from its attempts there.
    public static func elsewhere(_ others: [BreakerAttempt], settings: QuarantineSettings) -> BreakerAttempt.Elsewhere {
        var failed = false
        for a in others {
            switch verdict(a, settings: settings) {
            case .success: return .notFailing
            case .counts, .ranLong: failed = true
            case .ignored: if a.isFailure { failed = true }
            }
        }
        return failed ? .failedEverywhere : .nowhere
    }

    /// Whether the failures are the jobs' fault rather than the host's, judged by the other
    /// hosts' attempts that ended in the same window: some ended and none succeeded (a batch
    /// whose every job fails, everywhere). None succeeded yet but some started there so
    /// recently (`otherYoung`) that they may fail as fast: not judged yet (the host's events
    /// come in bursts, so one host's quick failures may be applied before the others' —
    /// `parallel false` on every host must quarantine none). With no other host nothing can
    /// be compared, and a lone host is never quarantined (it would only stop all work).
    public static func jobsAtFault(otherHosts: Int, otherSuccesses: Int, otherFailures: Int, otherYoung: Int = 0) -> Bool {
        blame(otherHosts: otherHosts, otherSuccesses: otherSuccesses, otherFailures: otherFailures, otherYoung: otherYoung) != .host
    }

    /// When the streak of `evidence` began: the earliest start of its failed attempts.
    public static func streakStart(_ evidence: [BreakerAttempt]) -> Double {
        evidence.map { $0.endedAt - $0.seconds }.min() ?? 0
    }

    /// Who the other hosts' attempts of the window say is at fault.
    public enum Blame: Sendable, Equatable {
        case host
        case jobs
        /// Nothing ended elsewhere yet, but attempts started there just now: ask again when one ends.
        case undecided
    }

    public static func blame(otherHosts: Int, otherSuccesses: Int, otherFailures: Int, otherYoung: Int = 0) -> Blame {
        if otherHosts == 0 { return .jobs }
        if otherSuccesses > 0 { return .host }
        if otherFailures > 0 { return .jobs }
        return otherYoung > 0 ? .undecided : .host
    }

    /// The cool-down after a failed probe: twice the last one, at most a day.
    public static func doubled(_ cooldown: Double) -> Double { min(cooldown * 2, 86_400) }

    /// One line per piece of evidence: the job, its outcome, how fast, and its stderr's head.
    public static func describe(_ evidence: [BreakerAttempt], label: (Int) -> String) -> String {
        evidence.map { a in
            let err = a.stderrHead.map { ": " + $0.split(separator: "\n", omittingEmptySubsequences: true).prefix(2).joined(separator: " | ") } ?? ""
            return "job \(label(a.job)) attempt \(a.attempt) \(a.outcome) after \(String(format: "%.1f", a.seconds)) s\(err)"
        }.joined(separator: "; ")
    }
}
