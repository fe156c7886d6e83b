import DroverInventory
import Foundation

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
    /// The kind of work: its job's batch ("" for a job of no batch).
    public var kind: String = ""

    public init(job: Int, attempt: Int, state: String, exitCode: Int?, signal: String? = nil, seconds: Double, endedAt: Double,
                stderrHead: String? = nil, elsewhere: Elsewhere = .nowhere, kind: String = "") {
        self.job = job
        self.attempt = attempt
        self.state = state
        self.exitCode = exitCode
        self.signal = signal
        self.seconds = seconds
        self.endedAt = endedAt
        self.stderrHead = stderrHead
        self.elsewhere = elsewhere
        self.kind = kind
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

    /// The host's streak: the newest failure of each different job among its counted failures
    /// in a row (attempts newest first, ended after `since` and within `settings.within` of
    /// `now`), when they are at least `settings.failures`; else nil. Whether the streak proves
    /// the host at fault is `needed`'s question.
    public static func evidence(_ newestFirst: [BreakerAttempt], settings: QuarantineSettings, now: Double, since: Double = 0) -> [BreakerAttempt]? {
        var found: [BreakerAttempt] = []
        var jobs: Set<Int> = []
        loop: for a in newestFirst {
            guard a.endedAt > since, now - a.endedAt <= settings.within else { break }
            switch verdict(a, settings: settings) {
            case .success, .ranLong: break loop
            case .ignored: continue
            case .counts:
                if jobs.insert(a.job).inserted { found.append(a) }
            }
        }
        return found.count >= settings.failures ? found : nil
    }

    /// The failure rate elsewhere at which `settings.failures` failures in a row prove a host
    /// at fault: a healthy host would fail that many in a row with a chance of 1 in 32^failures
    /// (one in a million for 4).
    public static let clearRate = 1.0 / 32

    /// How many different jobs must fail quickly in a row on a host to prove it at fault, when
    /// the same kind of work (the same batches) failed `otherFailures` times and did not fail
    /// quickly `otherSuccesses` times on the other hosts over the same time: enough that a host
    /// failing as often as the others would fail that many in a row by chance no more often
    /// than 1 in 32^failures, and at least `settings.failures`. The others' failure rate is
    /// counted as (failures + 1) / (attempts + 2), so that a few attempts elsewhere prove
    /// little: with 4 `failures`, one success elsewhere asks for 13, eight for 7, forty for 4;
    /// a batch whose jobs fail half the time everywhere asks for 20.
    public static func needed(otherSuccesses: Int, otherFailures: Int, settings: QuarantineSettings) -> Int {
        let rate = Double(otherFailures + 1) / Double(otherSuccesses + otherFailures + 2)
        let n = (Double(settings.failures) * log(clearRate) / log(rate)).rounded(.up)
        return max(settings.failures, n.isFinite ? Int(min(n, 1_000_000)) : 1_000_000)
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
        /// The host failed more than the others did at the same work, but not enough to prove it (`needed`).
        case unproven
        /// Nothing ended elsewhere yet, but attempts started there just now: ask again when one ends.
        case undecided
    }

    public static func blame(otherHosts: Int, otherSuccesses: Int, otherFailures: Int, otherYoung: Int = 0) -> Blame {
        if otherHosts == 0 { return .jobs }
        if otherSuccesses > 0 { return .host }
        if otherFailures > 0 { return .jobs }
        return otherYoung > 0 ? .undecided : .host
    }

    /// How the other hosts did at one kind of work (a batch) over a streak's time.
    public struct Record: Sendable, Equatable {
        /// Attempts that succeeded, or still run and outlived a quick failure.
        public var successes = 0
        public var failures = 0
        /// Attempts that started less than `short` ago: they may still fail as quickly.
        public var young = 0
        public init(successes: Int = 0, failures: Int = 0, young: Int = 0) {
            self.successes = successes
            self.failures = failures
            self.young = young
        }
    }

    /// The verdict on a host's streak, given the other hosts' record at each kind of work in it
    /// (`Journal.otherHostsRecord`): failures of a batch that only failed elsewhere are the
    /// batch's, and leave the streak. Of what remains: `.host` when `settings.failures` of its
    /// jobs succeeded on another host (their retries); else `blame` on the others' summed
    /// record, and `.host` only when the streak is as long as `needed` asks. Returns the streak that was
    /// judged and the record it was judged by.
    public static func judge(_ evidence: [BreakerAttempt], records: [String: Record], otherHosts: Int,
                             settings: QuarantineSettings) -> (evidence: [BreakerAttempt], others: Record, blame: Blame) {
        let failingEverywhere = Set(records.filter { $0.value.successes == 0 && $0.value.failures > 0 }.map(\.key))
        let kept = evidence.filter { !failingEverywhere.contains($0.kind) }
        let others = Set(kept.map(\.kind)).reduce(into: Record()) { sum, kind in
            let r = records[kind] ?? Record()
            sum.successes += r.successes
            sum.failures += r.failures
            sum.young += r.young
        }
        guard kept.count >= settings.failures, otherHosts > 0 else { return (kept, others, .jobs) }
        // The same jobs succeeded on another host (their retries): the host failed work that runs.
        if kept.filter({ $0.elsewhere == .notFailing }).count >= settings.failures { return (kept, others, .host) }
        let b = blame(otherHosts: otherHosts, otherSuccesses: others.successes, otherFailures: others.failures, otherYoung: others.young)
        guard b == .host else { return (kept, others, b) }
        let enough = kept.count >= needed(otherSuccesses: others.successes, otherFailures: others.failures, settings: settings)
        return (kept, others, enough ? .host : .unproven)
    }

    /// The cool-down after a failed probe: twice the last one, at most a day.
    public static func doubled(_ cooldown: Double) -> Double { min(cooldown * 2, 86_400) }

    /// One line per piece of evidence (the newest `limit`, then how many more): the job, its
    /// outcome, how fast, and its stderr's head.
    public static func describe(_ evidence: [BreakerAttempt], limit: Int = 4, label: (Int) -> String) -> String {
        let shown = evidence.prefix(limit).map { a in
            let err = a.stderrHead.map { ": " + $0.split(separator: "\n", omittingEmptySubsequences: true).prefix(2).joined(separator: " | ") } ?? ""
            return "job \(label(a.job)) attempt \(a.attempt) \(a.outcome) after \(String(format: "%.1f", a.seconds)) s\(err)"
        }.joined(separator: "; ")
        return evidence.count > limit ? shown + "; and \(evidence.count - limit) more" : shown
    }
}
