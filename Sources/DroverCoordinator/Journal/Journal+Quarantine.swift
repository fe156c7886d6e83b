import DroverInventory
import Foundation

/// A host's circuit breaker as recorded (docs/failures.md, "Black-hole hosts").
public struct QuarantineRecord: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        /// Jobs go there (the breaker is closed).
        case closed
        /// Quarantined; after `until` one probe job may go there (half-open).
        case open
        /// Quarantined; its probe job runs.
        case probing
        /// Quarantined by a person (`drover hosts quarantine`): no probe until released.
        case manual
    }

    public var host: String
    public var state: State
    /// Unix seconds of the last change.
    public var since: Double
    /// When the cool-down ends (`open`).
    public var until: Double?
    /// The cool-down that ends at `until`, seconds (doubled by each failed probe).
    public var cooldown: Double?
    /// Why (the evidence, or who decided).
    public var reason: String?
    public var probeJob: Int?
    public var probeAttempt: Int?
    /// Attempts that ended before this time no longer count (it was closed or released then).
    public var resetAt: Double?

    public init(host: String, state: State, since: Double, until: Double? = nil, cooldown: Double? = nil, reason: String? = nil,
                probeJob: Int? = nil, probeAttempt: Int? = nil, resetAt: Double? = nil) {
        self.host = host
        self.state = state
        self.since = since
        self.until = until
        self.cooldown = cooldown
        self.reason = reason
        self.probeJob = probeJob
        self.probeAttempt = probeAttempt
        self.resetAt = resetAt
    }

    /// Whether the scheduler may give the host work at all (a half-open host: one probe).
    public var isQuarantined: Bool { state != .closed }

    /// `open` and its cool-down is over at `now`: one probe job may go there.
    public func halfOpen(at now: Double) -> Bool { state == .open && (until ?? .infinity) <= now }
}

/// A host's streak of quick failures, how the other hosts did at the same work meanwhile, and the verdict.
public struct BreakerCase: Sendable, Equatable {
    /// The newest failure of each different job of the streak, newest first (without those of
    /// batches that only failed on the other hosts).
    public var evidence: [BreakerAttempt]
    /// The other hosts' attempts at the streak's batches since it began that did not fail quickly.
    public var otherSuccesses: Int
    public var otherFailures: Int
    public var blame: CircuitBreaker.Blame
    /// How many of the streak's jobs succeeded on another host.
    public var succeededElsewhere = 0
}

/// Circuit breakers, and the attempt history they are decided from.
extension Journal {
    /// Format 3: the breakers, and the head of a failed attempt's stderr (the evidence).
    static func addQuarantine(_ db: SQLiteDatabase) throws {
        try db.execute("""
            CREATE TABLE IF NOT EXISTS quarantine (
                host TEXT PRIMARY KEY, state TEXT NOT NULL, since REAL NOT NULL, until REAL, cooldown REAL,
                reason TEXT, probe_job INTEGER, probe_attempt INTEGER, reset_at REAL);
            CREATE INDEX IF NOT EXISTS attempts_host_ended ON attempts(host, ended_at);
            """)
        let have = try db.query("PRAGMA table_info(attempts)").contains { $0.string("name") == "stderr_head" }
        if !have { try db.execute("ALTER TABLE attempts ADD COLUMN stderr_head TEXT") }
    }

    /// Every host's breaker that was ever not closed.
    public func quarantines() throws -> [QuarantineRecord] {
        try Self.readQuarantines(db)
    }

    /// The breakers of a journal database (for readers such as `drover hosts`).
    public static func readQuarantines(_ db: SQLiteDatabase) throws -> [QuarantineRecord] {
        let exists = try !db.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name='quarantine'").isEmpty
        guard exists else { return [] }
        return try db.query("SELECT * FROM quarantine ORDER BY host").compactMap { r in
            guard let host = r.string("host"), let state = r.string("state").flatMap(QuarantineRecord.State.init(rawValue:)) else { return nil }
            return QuarantineRecord(host: host, state: state, since: r.double("since") ?? 0, until: r.double("until"), cooldown: r.double("cooldown"),
                                    reason: r.string("reason"), probeJob: r.int("probe_job"), probeAttempt: r.int("probe_attempt"), resetAt: r.double("reset_at"))
        }
    }

    /// Writes a host's breaker.
    public func setQuarantine(_ q: QuarantineRecord) throws {
        try db.run("""
            INSERT INTO quarantine(host, state, since, until, cooldown, reason, probe_job, probe_attempt, reset_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(host) DO UPDATE SET state=excluded.state, since=excluded.since, until=excluded.until, cooldown=excluded.cooldown,
              reason=excluded.reason, probe_job=excluded.probe_job, probe_attempt=excluded.probe_attempt, reset_at=excluded.reset_at
            """, .text(q.host), .text(q.state.rawValue), .double(q.since), .from(q.until), .from(q.cooldown), .from(q.reason),
                   .from(q.probeJob), .from(q.probeAttempt), .from(q.resetAt))
    }

    /// Keeps the head of a failed attempt's stderr (the breaker's evidence).
    func setStderrHead(job: Int, attempt: Int, _ head: String) throws {
        try db.run("UPDATE attempts SET stderr_head=? WHERE job=? AND attempt=?", .text(head), .int(Int64(job)), .int(Int64(attempt)))
    }

    /// The attempts on `host` that ended after `since`, newest first (at most `limit`), each
    /// with how its job fared on the other hosts it ran on.
    public func breakerHistory(host: String, since: Double, settings: QuarantineSettings, limit: Int = 64) throws -> [BreakerAttempt] {
        var mine = try db.query("""
            SELECT a.job, a.attempt, a.agent_state, a.exit_code, a.signal, a.started_at, a.dispatched_at, a.ended_at, a.stderr_head,
                   coalesce(j.batch, '') AS kind FROM attempts a JOIN jobs j ON j.id = a.job
            WHERE a.host=? AND a.ended_at > ? AND a.agent_state IN \(AgentStates.finalSQL) ORDER BY a.ended_at DESC LIMIT ?
            """, .text(host), .double(since), .int(Int64(limit))).map(Self.breakerAttempt)
        guard !mine.isEmpty else { return [] }
        var others: [Int: [BreakerAttempt]] = [:]
        for r in try db.query("""
            SELECT job, attempt, agent_state, exit_code, signal, started_at, dispatched_at, ended_at, NULL AS stderr_head FROM attempts
            WHERE job IN \(Self.inIDList) AND host != ? AND agent_state IN \(AgentStates.finalSQL)
            """, Self.idList(Set(mine.map(\.job))), .text(host)) {
            let a = Self.breakerAttempt(r)
            others[a.job, default: []].append(a)
        }
        for i in mine.indices { mine[i].elsewhere = CircuitBreaker.elsewhere(others[mine[i].job] ?? [], settings: settings) }
        return mine
    }

    /// Successes and failures of attempts on hosts other than `host` that ended after `since`.
    public func otherHostsOutcomes(than host: String, since: Double, youngSince: Double = .infinity) throws -> (successes: Int, failures: Int, young: Int) {
        let r = try db.query("""
            SELECT SUM(agent_state='exited' AND exit_code=0) AS ok,
                   SUM(agent_state IN ('signaled','start_failed') OR (agent_state='exited' AND exit_code != 0)) AS bad
            FROM attempts WHERE host != ? AND ended_at > ?
            """, .text(host), .double(since)).first
        // Attempts elsewhere that started so recently that they may still fail as quickly.
        let young = !youngSince.isFinite ? 0 : try db.query("""
            SELECT COUNT(*) AS n FROM attempts WHERE host != ? AND stale=0 AND state IN ('dispatched','accepted','starting','running')
            AND coalesce(started_at, dispatched_at) > ?
            """, .text(host), .double(youngSince)).first?.int("n") ?? 0
        return (r?.int("ok") ?? 0, r?.int("bad") ?? 0, young)
    }

    /// How the other hosts than `host` did at each of `kinds` of work (batch names, "" for
    /// jobs of no batch) over the same time: attempts that ended after `since` as a success or
    /// a failure, attempts that still run there and started before `now - short` (they outlived
    /// a quick failure: counted with the successes), and those started after `youngSince`
    /// (they may still fail as quickly).
    public func otherHostsRecord(than host: String, kinds: Set<String>, since: Double, now: Double, short: Double,
                                 youngSince: Double = .infinity) throws -> [String: CircuitBreaker.Record] {
        guard !kinds.isEmpty else { return [:] }
        let marks = Array(repeating: "?", count: kinds.count).joined(separator: ",")
        let young = youngSince.isFinite ? youngSince : .greatestFiniteMagnitude
        let values: [SQLValue] = [.double(since), .double(now - short), .double(young), .text(host)] + kinds.sorted().map { .text($0) }
        var out: [String: CircuitBreaker.Record] = [:]
        for r in try db.query("""
            SELECT coalesce(j.batch, '') AS kind,
                   SUM(a.ended_at > ?1 AND a.agent_state='exited' AND a.exit_code=0) AS ok,
                   SUM(a.ended_at > ?1 AND (a.agent_state IN ('signaled','start_failed') OR (a.agent_state='exited' AND a.exit_code != 0))) AS bad,
                   SUM(a.stale=0 AND a.state IN ('dispatched','accepted','starting','running') AND coalesce(a.started_at, a.dispatched_at) <= ?2) AS old,
                   SUM(a.stale=0 AND a.state IN ('dispatched','accepted','starting','running') AND coalesce(a.started_at, a.dispatched_at) > ?3) AS young
            FROM attempts a JOIN jobs j ON j.id = a.job WHERE a.host != ?4 AND coalesce(j.batch, '') IN (\(marks))
            GROUP BY coalesce(j.batch, '')
            """, values) {
            out[r.string("kind") ?? ""] = CircuitBreaker.Record(successes: (r.int("ok") ?? 0) + (r.int("old") ?? 0), failures: r.int("bad") ?? 0,
                                                                young: r.int("young") ?? 0)
        }
        return out
    }

    /// A host's streak of quick failures and the verdict on it (`CircuitBreaker.judge`), at
    /// `now`, counting attempts that ended after `resetAt`; nil when there is no streak.
    /// `waitedOut`: attempts still running elsewhere are no longer young.
    public func breakerCase(host: String, otherHosts: Int, settings: QuarantineSettings, now: Double, resetAt: Double = 0,
                            waitedOut: Bool = false) throws -> BreakerCase? {
        let since = max(resetAt, now - settings.within)
        let history = try breakerHistory(host: host, since: since, settings: settings)
        guard let evidence = CircuitBreaker.evidence(history, settings: settings, now: now, since: since) else { return nil }
        // The other hosts are asked about the streak's own time and work only: successes there
        // before it began, or at other batches, say nothing about jobs that fail everywhere now.
        let records = try otherHostsRecord(than: host, kinds: Set(evidence.map(\.kind)), since: CircuitBreaker.streakStart(evidence),
                                           now: now, short: settings.short, youngSince: waitedOut ? .infinity : now - settings.short)
        let v = CircuitBreaker.judge(evidence, records: records, otherHosts: otherHosts, settings: settings)
        return BreakerCase(evidence: v.evidence, otherSuccesses: v.others.successes, otherFailures: v.others.failures, blame: v.blame,
                           succeededElsewhere: v.evidence.filter { $0.elsewhere == .notFailing }.count)
    }

    static func breakerAttempt(_ r: SQLRow) -> BreakerAttempt {
        let end = r.double("ended_at") ?? 0
        let start = r.double("started_at") ?? r.double("dispatched_at") ?? end
        return BreakerAttempt(job: r.int("job") ?? 0, attempt: r.int("attempt") ?? 0, state: r.string("agent_state") ?? "", exitCode: r.int("exit_code"),
                              signal: r.string("signal"), seconds: max(0, end - start), endedAt: end, stderrHead: r.string("stderr_head"),
                              kind: r.string("kind") ?? "")
    }

    /// For each of `jobs`, the hosts where one of its attempts failed (retries prefer others).
    public func failedHosts(of jobs: [Int]) throws -> [Int: Set<String>] {
        guard !jobs.isEmpty else { return [:] }
        var out: [Int: Set<String>] = [:]
        for r in try db.query("""
            SELECT DISTINCT job, host FROM attempts WHERE job IN \(Self.inIDList)
            AND (agent_state IN ('signaled','timed_out','resource_limit','start_failed') OR (agent_state='exited' AND exit_code != 0))
            """, Self.idList(jobs)) {
            if let j = r.int("job"), let h = r.string("host") { out[j, default: []].insert(h) }
        }
        return out
    }
}

/// What a person decides (`drover hosts quarantine` / `release`); the coordinator reads it.
extension Journal {
    /// The head of an attempt's stderr, when the coordinator kept it.
    func stderrHead(job: Int, attempt: Int) throws -> String? {
        try db.query("SELECT stderr_head FROM attempts WHERE job=? AND attempt=?", .int(Int64(job)), .int(Int64(attempt))).first?.string("stderr_head")
    }

    /// Quarantines `host` until someone releases it (no probe); running jobs continue.
    public func quarantineByHand(_ host: String, reason: String, at time: Double = Date().timeIntervalSince1970) throws {
        try db.transaction {
            let old = try Self.readQuarantines(db).first { $0.host == host }
            try setQuarantine(QuarantineRecord(host: host, state: .manual, since: time, reason: reason, resetAt: old?.resetAt))
            try audit("quarantine", host: host, state: "quarantined", "\(host) quarantined by hand (\(reason)): no new work there until `drover hosts release \(host)`", time: time)
        }
    }

    /// Releases `host` from quarantine (a manual one or the breaker's); earlier failures no
    /// longer count. False when it was not quarantined.
    @discardableResult
    public func releaseQuarantine(_ host: String, by who: String, at time: Double = Date().timeIntervalSince1970) throws -> Bool {
        try db.transaction {
            guard let old = try Self.readQuarantines(db).first(where: { $0.host == host }), old.isQuarantined else { return false }
            try setQuarantine(QuarantineRecord(host: host, state: .closed, since: time, reason: "released by \(who)", resetAt: time))
            try audit("quarantine", host: host, state: "closed", "\(host) released from quarantine by \(who); jobs go there again", time: time)
            return true
        }
    }
}
