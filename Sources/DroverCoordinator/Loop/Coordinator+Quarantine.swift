import DroverCore
import DroverInventory
import Foundation

/// Each host's circuit breaker as the journal has it, and the verdicts that wait. Owned by
/// `Coordinator+Quarantine`.
struct BreakerBoard {
    /// Each host's breaker, as in the journal.
    var records: [String: QuarantineRecord] = [:]
    /// Whether `records` was read from the journal once (later reads report what others changed).
    var loaded = false
    /// Hosts with the evidence for a quarantine whose verdict waits for the other hosts'
    /// attempts, with when it is taken at the latest (Unix seconds).
    var undecided: [String: Double] = [:]
    /// Half-open hosts whose end of cool-down was said already.
    var announcedHalfOpen: Set<String> = []
    /// The journal connection's rollback count when `records` was last known to match it.
    var rollbacksSeen = 0
}

/// The circuit breaker per host (docs/failures.md, "Black-hole hosts"): a host that fails
/// several different jobs in a row quickly is quarantined (no new work), and after a
/// cool-down one probe job decides whether it is healed.
extension Coordinator {
    /// Reads every breaker from the journal (at start, and after another process — `drover
    /// hosts quarantine/release` — committed); says what changed that this loop did not do.
    func loadBreakers() throws {
        var fresh: [String: QuarantineRecord] = [:]
        for q in try journal.quarantines() { fresh[q.host] = q }
        for (host, q) in fresh where breakers.records[host] != q && breakers.loaded {
            let text = "\(host): \(q.isQuarantined ? "quarantined" : "released") by hand\(q.reason.map { " (\($0))" } ?? "")"
            log(text)
            if q.isQuarantined && breakers.records[host]?.isQuarantined != true {
                do { try notify(.hostQuarantined, host: host, message: text) } catch { log("journal: \(error)") }
            }
        }
        breakers.records = fresh
        breakers.loaded = true
        agenda.schedule = true
    }

    /// A transaction rolled back since the breakers were last in step with the journal (a full
    /// disk, …): what this loop changed in `records` inside it (a probe placed, a release) may
    /// not be in the journal, so they are read again, as at start — silently: the journal is the
    /// truth, and the events that made those changes are applied again when their host's
    /// stream resumes. Found by the hour soak: a probe's success applied in a transaction the
    /// full journal disk rolled back left the host released in memory and `probing` in the
    /// journal; the re-applied success then judged no probe, the next reading announced the
    /// host "quarantined by hand", and it stayed quarantined with its probe long over.
    func resyncBreakersAfterRollback() throws {
        let n = journal.db.rollbacks
        guard n != breakers.rollbacksSeen else { return }
        let wasLoaded = breakers.loaded
        breakers.loaded = false  // read as at start: nothing is reported as done by hand
        do { try loadBreakers() } catch {
            breakers.loaded = wasLoaded
            throw error
        }
        breakers.rollbacksSeen = n
    }

    /// How many new jobs the scheduler may place on `host` now: nil for any, 0 for none
    /// (quarantined), 1 for a half-open host's probe.
    func placementLimit(_ host: String) -> Int? {
        // A host whose verdict waits gets no new work meanwhile: a black hole would eat the queue.
        if breakers.undecided[host] != nil { return 0 }
        guard let q = breakers.records[host], q.isQuarantined else { return nil }
        return q.halfOpen(at: wallNow) ? 1 : 0
    }

    /// Verdicts that waited `short` for the other hosts: taken now.
    func judgeUndecided() throws {
        guard let settings = settings.quarantine else { breakers.undecided.removeAll(); return }
        let due = breakers.undecided.filter { $0.value <= wallNow }.map(\.key)
        guard !due.isEmpty else { return }
        // Young attempts elsewhere no longer count: they ran longer than a quick failure.
        try journal.db.transaction {
            for host in due { try tripIfEvidence(host, settings: settings, waitedOut: true) }
        }
    }

    /// The earliest end of a cool-down still ahead, Unix seconds.
    var breakerDue: Double? {
        breakers.records.values.filter { $0.state == .open }.compactMap(\.until).filter { $0 > wallNow }.min()
    }

    /// Cool-downs that ended: each such host may take one probe job (said once).
    func openHalfway() throws {
        for (host, q) in breakers.records where q.halfOpen(at: wallNow) && !breakers.announcedHalfOpen.contains(host) {
            breakers.announcedHalfOpen.insert(host)
            try journal.audit("quarantine", host: host, state: "half_open", "\(host): cool-down of \(Self.span(q.cooldown ?? 0)) over; one probe job may run there")
            logAfterCommit("\(host): cool-down over; one probe job may run there (half-open)")
            agenda.schedule = true
        }
    }

    /// A probe job was placed on a half-open host (inside the schedule transaction).
    func placedProbe(on host: String, job: Int, attempt: Int, label: String) throws {
        guard var q = breakers.records[host], q.halfOpen(at: wallNow) else { return }
        q.state = .probing
        q.probeJob = job
        q.probeAttempt = attempt
        try journal.setQuarantine(q)
        try journal.audit("quarantine", job: job, attempt: attempt, host: host, state: "probing", "\(host): job \(label) attempt \(attempt) is its probe")
        breakers.records[host] = q
        logAfterCommit("\(host): probe job \(label) attempt \(attempt)")
    }

    /// A probe that ended without being concluded (lost with its host, replaced): the host is
    /// half-open again and another probe may go.
    func checkProbes() throws {
        for (host, q) in breakers.records where q.state == .probing {
            guard let job = q.probeJob, let n = q.probeAttempt else { continue }
            let a = try journal.attempt(job, n)
            let live = a.map { !$0.stale && ["dispatched", "accepted", "starting", "running"].contains($0.state) } ?? false
            let concluded = a?.agentState.map { AgentStates.final.contains($0) } ?? false
            if live || concluded { continue }
            try reopen(host, q, cooldown: q.cooldown ?? 0, until: wallNow, why: "its probe (job \(job) attempt \(n)) ended without a verdict")
        }
    }

    /// Judges a concluded attempt (inside the caller's transaction): the end of a probe opens or
    /// closes the breaker; a quick failure may trip it.
    func judgeBreaker(_ a: AttemptRecord, job: JobRecord) throws {
        guard let settings = settings.quarantine else { return }
        let host = a.host
        if let q = breakers.records[host], q.state == .probing, q.probeJob == a.job, q.probeAttempt == a.attempt {
            try judgeProbe(a, job: job, q, settings: settings)
            return
        }
        // Hosts whose verdict waited for the others' attempts: this end may decide it.
        for other in breakers.undecided.keys where other != host { try tripIfEvidence(other, settings: settings) }
        guard breakers.records[host]?.isQuarantined != true, let state = a.agentState else { return }
        if state == "exited" && a.exitCode == 0 {
            // The hosts where this job failed failed work that runs here: evidence against them.
            for other in try journal.failedHosts(of: [a.job])[a.job] ?? [] where other != host && breakers.records[other]?.isQuarantined != true {
                try tripIfEvidence(other, settings: settings)
            }
            return
        }
        let seconds = (a.endedAt ?? wallNow) - (a.startedAt ?? a.endedAt ?? wallNow)
        let me = BreakerAttempt(job: a.job, attempt: a.attempt, state: state, exitCode: a.exitCode, seconds: seconds, endedAt: a.endedAt ?? wallNow)
        guard CircuitBreaker.verdict(me, settings: settings) == .counts else { return }
        try tripIfEvidence(host, settings: settings)
    }

    /// Quarantines `host` when its recent attempts hold a streak of quick failures that the
    /// other hosts' record at the same kind of work (the streak's batches, over the streak's
    /// time) cannot explain (`CircuitBreaker.needed`); while the other hosts cannot tell yet,
    /// the host waits in `breakers.undecided` — taking no new work — and is judged again when
    /// another host's attempt ends, or `short` later (`judgeUndecided`: the others' attempts
    /// that still run then are no quick failures: `waitedOut`).
    func tripIfEvidence(_ host: String, settings: QuarantineSettings, waitedOut: Bool = false) throws {
        let waiting = breakers.undecided.removeValue(forKey: host)
        if waiting != nil { agenda.schedule = true }
        guard breakers.records[host]?.isQuarantined != true else { return }
        guard let c = try journal.breakerCase(host: host, otherHosts: inventory.hosts.count - 1, settings: settings, now: wallNow,
                                              resetAt: breakers.records[host]?.resetAt ?? 0, waitedOut: waitedOut) else { return }
        switch c.blame {
        case .jobs, .unproven: return
        case .undecided: breakers.undecided[host] = waiting ?? wallNow + settings.short
        case .host: try quarantine(host, c, settings: settings)
        }
    }

    /// Quarantines `host` for the quick failures in `evidence`.
    func quarantine(_ host: String, _ c: BreakerCase, settings: QuarantineSettings) throws {
        let evidence = c.evidence
        let labels = Dictionary(try journal.jobs(evidence.map(\.job)).map { ($0.id, $0.label) }) { a, _ in a }
        let text = CircuitBreaker.describe(evidence, label: { labels[$0] ?? String($0) })
        let span = (evidence.map(\.endedAt).max() ?? 0) - (evidence.map(\.endedAt).min() ?? 0)
        let retried = c.succeededElsewhere > 0 ? " (\(c.succeededElsewhere) of these jobs succeeded there)" : ""
        let record = "the other hosts failed \(c.otherFailures) of \(c.otherSuccesses + c.otherFailures) attempts at the same batches meanwhile\(retried)"
        let why = "\(evidence.count) different jobs failed there in a row within \(Self.span(span)), each in under \(Self.span(settings.short)), "
            + "while \(record): \(text)"
        try quarantine(host, cooldown: settings.cooldown, why: why)
    }

    func judgeProbe(_ a: AttemptRecord, job: JobRecord, _ q: QuarantineRecord, settings: QuarantineSettings) throws {
        let host = a.host
        let seconds = (a.endedAt ?? wallNow) - (a.startedAt ?? a.endedAt ?? wallNow)
        var me = BreakerAttempt(job: a.job, attempt: a.attempt, state: a.agentState ?? "", exitCode: a.exitCode, signal: a.signal,
                                seconds: seconds, endedAt: a.endedAt ?? wallNow)
        let others = try journal.attempts(of: a.job).filter { $0.host != host }.compactMap { o in
            o.agentState.map { BreakerAttempt(job: o.job, attempt: o.attempt, state: $0, exitCode: o.exitCode, seconds: 0, endedAt: o.endedAt ?? 0) }
        }
        me.elsewhere = CircuitBreaker.elsewhere(others, settings: settings)
        switch CircuitBreaker.verdict(me, settings: settings) {
        case .success:
            let closed = QuarantineRecord(host: host, state: .closed, since: wallNow, reason: "probe job \(job.label) succeeded", resetAt: wallNow)
            try journal.setQuarantine(closed)
            try journal.audit("quarantine", job: a.job, attempt: a.attempt, host: host, state: "closed", "\(host): probe job \(job.label) succeeded; jobs go there again")
            breakers.records[host] = closed
            breakers.announcedHalfOpen.remove(host)
            agenda.schedule = true
            logAfterCommit("\(host): probe job \(job.label) succeeded; released from quarantine")
        case .counts where try jobsAtFault(host, since: wallNow - settings.within):
            try reopen(host, q, cooldown: q.cooldown ?? settings.cooldown, until: wallNow,
                       why: "its probe job \(job.label) ended \(me.outcome), but jobs fail on the other hosts too")
        case .counts:
            me.stderrHead = try journal.stderrHead(job: a.job, attempt: a.attempt)
            let evidence = CircuitBreaker.describe([me], label: { _ in job.label })
            try quarantine(host, cooldown: CircuitBreaker.doubled(q.cooldown ?? settings.cooldown), why: "its probe failed: \(evidence)")
        case .ranLong, .ignored:
            try reopen(host, q, cooldown: q.cooldown ?? settings.cooldown, until: wallNow,
                       why: "its probe job \(job.label) ended \(me.outcome), which says nothing about the host")
        }
    }

    /// Logs `line` once the current transaction commits (a change it announces may yet roll back).
    func logAfterCommit(_ line: String) {
        journal.db.afterCommit { [log] in log(line) }
    }

    /// Opens the breaker: no new work on `host` for `cooldown` seconds, then one probe.
    func quarantine(_ host: String, cooldown: Double, why: String) throws {
        let until = wallNow + cooldown
        let q = QuarantineRecord(host: host, state: .open, since: wallNow, until: until, cooldown: cooldown, reason: why,
                                 resetAt: breakers.records[host]?.resetAt)
        try journal.setQuarantine(q)
        let text = "\(host) quarantined: \(why); no new work there for \(Self.span(cooldown)), then one probe job"
        try journal.audit("quarantine", host: host, state: "quarantined", text)
        try notify(.hostQuarantined, host: host, message: text)
        breakers.records[host] = q
        breakers.announcedHalfOpen.remove(host)
        logAfterCommit("warning: " + text)
    }

    /// Back to `open` with the same cool-down, half-open again at `until`.
    func reopen(_ host: String, _ old: QuarantineRecord, cooldown: Double, until: Double, why: String) throws {
        var q = old
        q.state = .open
        q.until = until
        q.cooldown = cooldown
        q.probeJob = nil
        q.probeAttempt = nil
        try journal.setQuarantine(q)
        try journal.audit("quarantine", host: host, state: "half_open", "\(host): \(why); another probe may run there")
        breakers.records[host] = q
        breakers.announcedHalfOpen.remove(host)
        agenda.schedule = true
    }

    /// Whether the other hosts fail too (`CircuitBreaker.jobsAtFault`).
    func jobsAtFault(_ host: String, since: Double) throws -> Bool {
        guard let settings = settings.quarantine else { return true }
        return try blame(host, since: since, settings: settings) != .host
    }

    /// Who is at fault for a host's quick failures, judged by the other hosts (`CircuitBreaker.blame`).
    /// `countingYoung`: attempts started elsewhere less than `short` ago may make it `.undecided`.
    func blame(_ host: String, since: Double, settings: QuarantineSettings, countingYoung: Bool = true) throws -> CircuitBreaker.Blame {
        let others = try journal.otherHostsOutcomes(than: host, since: since, youngSince: countingYoung ? wallNow - settings.short : .infinity)
        return CircuitBreaker.blame(otherHosts: inventory.hosts.count - 1, otherSuccesses: others.successes, otherFailures: others.failures,
                                    otherYoung: others.young)
    }

    /// "45 s", "10 min", "1.5 h".
    static func span(_ seconds: Double) -> String {
        if seconds < 120 { return "\(Int(seconds.rounded())) s" }
        if seconds < 7200 { return String(format: "%g min", (seconds / 60 * 10).rounded() / 10) }
        return String(format: "%g h", (seconds / 3600 * 10).rounded() / 10)
    }
}
