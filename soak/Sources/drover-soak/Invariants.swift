import DroverCoordinator
import DroverCore
import Foundation

/// The invariants checked at the end of a run, each giving one row of the result table.
/// docs/reliability.md states each one precisely.
struct Invariants {
    struct Row {
        var name: String
        var ok: Bool
        var detail: String
    }

    let journal: Journal
    let cid: String
    /// Every job the soak submitted, with its kind.
    let kinds: [Int: JobKind]
    /// What was read back from each host.
    let records: [String: AgentRecords]
    /// The host whose agent root is a tmpfs, and when it was powered off (its agent state is then gone).
    let scratchHost: String?
    let scratchWipes: [Double]

    var rows: [Row] = []

    init(journal: Journal, kinds: [Int: JobKind], records: [String: AgentRecords], scratchHost: String?, scratchWipes: [Double]) throws {
        self.journal = journal
        self.cid = try journal.coordinatorID()
        self.kinds = kinds
        self.records = records
        self.scratchHost = scratchHost
        self.scratchWipes = scratchWipes
    }

    mutating func add(_ name: String, _ problems: [String], ok detail: String) {
        let shown = problems.prefix(4).joined(separator: "; ") + (problems.count > 4 ? "; … \(problems.count - 4) more" : "")
        rows.append(Row(name: name, ok: problems.isEmpty, detail: problems.isEmpty ? detail : shown))
    }

    /// Every job reached exactly one final state: the jobs table says final, and the audit
    /// trail holds exactly one `job` event with a final state for it.
    mutating func checkOneFinalState(_ jobs: [JobRecord], events: [AuditEvent]) {
        var finals: [Int: Int] = [:]
        for e in events where e.kind == "job" {
            if let j = e.job, let s = e.state.flatMap(JobState.init(rawValue:)), s.isFinal { finals[j, default: 0] += 1 }
        }
        var problems: [String] = []
        for job in jobs where kinds[job.id] != nil {
            if !job.state.isFinal { problems.append("job \(job.id) (\(kinds[job.id]!.rawValue)) still \(job.state.rawValue)") }
            let n = finals[job.id] ?? 0
            if n != 1 { problems.append("job \(job.id) has \(n) final audit events") }
        }
        let missing = Set(kinds.keys).subtracting(jobs.map(\.id))
        problems += missing.sorted().map { "job \($0) is missing from the journal" }
        add("every job ends exactly once", problems, ok: "\(kinds.count) jobs, \(kinds.count) final transitions")
    }

    /// Each kind ended as designed: succeeding kinds `succeeded`; `failing` jobs `failed` with
    /// exit 3; `timeout` jobs `failed` with their last attempt `timed_out`.
    mutating func checkExpectedOutcomes(_ jobs: [JobRecord], attempts: [Int: [AttemptRecord]]) {
        var problems: [String] = []
        var counts: [String: Int] = [:]
        for job in jobs {
            guard let kind = kinds[job.id] else { continue }
            counts["\(kind.rawValue) \(job.state.rawValue)", default: 0] += 1
            let last = attempts[job.id]?.first { $0.attempt == job.attempt }
            let why = "job \(job.id) (\(kind.rawValue)) ended \(job.state.rawValue): \(job.reason ?? "")"
            switch kind {
            case .short, .long, .forking, .large, .checkpointed, .outlivesLease:
                if job.state != .succeeded { problems.append(why) }
            case .failing:
                if job.state != .failed || job.exitCode != 3 { problems.append(why) }
            case .timeout:
                if job.state != .failed || last?.agentState != "timed_out" { problems.append(why) }
            }
        }
        add("every job ends as designed", problems, ok: counts.keys.sorted().map { "\(counts[$0]!) \($0)" }.joined(separator: ", "))
    }

    /// No process on any host carries a Drover cookie once every job is over.
    mutating func checkNoOrphans(_ leftovers: [String: [String]]) {
        let problems = leftovers.keys.sorted().flatMap { host in leftovers[host]!.map { "\(host): \($0)" } }
        add("no process left behind", problems, ok: "no DROVER_COOKIE process on \(records.count) hosts")
    }

    /// The journal and the agents' event logs agree (docs/reliability.md, "Audit trail").
    mutating func checkAuditMatchesAgents(_ hosts: [HostRecord], attempts: [Int: [AttemptRecord]], events: [AuditEvent], dispatchTimes: [String: Double]) {
        var problems: [String] = []
        var unverifiable = 0
        var finalsChecked = 0
        // C1: every event of every log applied, none beyond it.
        for h in hosts {
            guard let r = records[h.name] else { continue }
            if h.lastSeq != r.lastSeq { problems.append("\(h.name): journal applied up to seq \(h.lastSeq), the agent's log ends at \(r.lastSeq)") }
            if r.malformed > 0 { problems.append("\(h.name): \(r.malformed) malformed or out-of-order line(s) in events.log (first: \(r.firstDisorder ?? "not JSON"))") }
        }
        var byAttempt: [String: AttemptRecord] = [:]
        for list in attempts.values { for a in list { byAttempt["\(a.job)/\(a.attempt)"] = a } }
        // Audit events per (job, attempt, host, state) that came from an agent's final transition.
        var audited: [String: Int] = [:]
        for e in events where (e.kind == "attempt" || e.kind == "late_result") && !e.message.contains(" lost with host ") {
            guard let j = e.job, let n = e.attempt, let h = e.host, let s = e.state, AgentStates.final.contains(s) else { continue }
            audited["\(j)/\(n)/\(h)/\(s)", default: 0] += 1
        }
        // C2 and C4: each final transition in a log is the journal's record of that attempt, audited once.
        var finalsInLogs: [String: Int] = [:]
        for (host, r) in records {
            for t in r.transitions where AgentStates.final.contains(t.state) {
                finalsChecked += 1
                finalsInLogs["\(t.job)/\(t.attempt)", default: 0] += 1
                guard let a = byAttempt["\(t.job)/\(t.attempt)"] else {
                    problems.append("\(host) logged attempt \(t.job)/\(t.attempt) \(t.state), unknown to the journal")
                    continue
                }
                if a.host != host { problems.append("attempt \(t.job)/\(t.attempt) ran on \(host), the journal says \(a.host)") }
                if a.agentState != t.state || a.exitCode != t.exitCode {
                    problems.append("attempt \(t.job)/\(t.attempt) on \(host): log \(t.state) \(t.exitCode.map(String.init) ?? ""), journal \(a.agentState ?? "nil") \(a.exitCode.map(String.init) ?? "")")
                }
                let n = audited["\(t.job)/\(t.attempt)/\(host)/\(t.state)"] ?? 0
                if n != 1 { problems.append("attempt \(t.job)/\(t.attempt) \(t.state) on \(host) has \(n) audit events") }
            }
        }
        // The coordinator's "new event log" detections: only on the scratch host, each after a
        // power-off of it (which lost its tmpfs root) since the previous detection.
        var replacedLogs: [Double] = []
        for e in events where e.kind == "host" && e.message.contains("has a new event log") {
            let previous = replacedLogs.last ?? 0
            if e.host != scratchHost || !scratchWipes.contains(where: { $0 > previous && $0 < e.time }) {
                problems.append("\(e.host ?? "?"): the coordinator saw a new event log with no lost state directory before it")
            }
            replacedLogs.append(e.time)
        }
        // C3: each attempt the journal has as ended by its agent has exactly one final line in that
        // host's log; attempts sent to the scratch host before the coordinator saw its new log are
        // unverifiable (the old log is gone; they may never have reached an agent).
        for a in byAttempt.values where kinds[a.job] != nil {
            let state = a.agentState ?? "nil"
            if !AgentStates.final.contains(state) {
                problems.append("attempt \(a.job)/\(a.attempt) on \(a.host) never ended (agent state \(state))")
                continue
            }
            if state == "never_started" { continue }
            let n = finalsInLogs["\(a.job)/\(a.attempt)"] ?? 0
            if n == 1 { continue }
            if n == 0, a.host == scratchHost, let t = dispatchTimes["\(a.job)/\(a.attempt)"], replacedLogs.contains(where: { $0 > t }) {
                unverifiable += 1
                continue
            }
            problems.append("attempt \(a.job)/\(a.attempt) (\(state) on \(a.host)) has \(n) final line(s) in the agent's log")
        }
        let unknown = events.filter { $0.kind == "unknown" }
        if !unknown.isEmpty { problems.append("\(unknown.count) `unknown` audit event(s), e.g. \(unknown[0].message)") }
        add("audit trail matches agent logs", problems,
            ok: "\(finalsChecked) final transitions in \(records.count) logs, each applied and audited once; all logs fully applied" + (unverifiable > 0 ? "; \(unverifiable) attempt(s) on \(scratchHost ?? "?") unverifiable (its tmpfs root was lost with a power-off)" : ""))
    }

    /// No process's resident size has a positive trend: over the last half of the run, per
    /// process lifetime, the least-squares slope is at most `maxSlope` MiB/hour, or the growth
    /// it fits over that half is at most `maxGrowth` MiB (a short window's noise).
    static let maxSlope = 10.0
    static let maxGrowth = 2.0
    /// A trend judged over less than this (seconds) is shown, not judged: a run of a few
    /// minutes cannot tell a leak from caches that warm up (SQLite's page cache, the
    /// scheduler's window), so the 2-minute CI soak prints its trends and a run of 10 minutes
    /// or more judges them.
    static let minJudgedSpan = 300.0

    /// SQLite's bound in the coordinator: two connections' page caches (2 MB each), their
    /// statement caches (200 statements of a few KiB each) and schemas, with room to spare.
    static let sqliteBound = 16 << 20

    mutating func checkMemory(_ figures: (trends: [MemorySampler.Trend], short: Int), sqlitePeak: Int = 0) {
        var problems: [String] = []
        let mib = { (b: Int) in String(format: "%.1f", Double(b) / 1_048_576) }
        if sqlitePeak > Self.sqliteBound {
            problems.append("SQLite held \(mib(sqlitePeak)) MiB in the coordinator, above its bound of \(mib(Self.sqliteBound)) MiB (page caches and at most \(SQLiteDatabase.statementLimit) statements per connection): statements or caches are not bounded")
        }
        let judged = figures.trends.filter { !$0.name.hasSuffix(MemorySampler.shownOnly) }
        for t in judged where t.slope > Self.maxSlope && t.growth > Self.maxGrowth && t.span >= Self.minJudgedSpan {
            problems.append("\(t.name): \(String(format: "%+.1f", t.slope)) MiB/h over the last \(Int(t.span)) s (\(t.count) samples, \(mib(t.first)) → \(mib(t.last)) MiB)")
        }
        if figures.trends.isEmpty { problems.append("too few memory samples (\(figures.short) series too short)") }
        func worst(_ prefix: String, resident: Bool = false) -> String {
            let list = figures.trends.filter { $0.name.hasPrefix(prefix) && $0.name.hasSuffix(MemorySampler.shownOnly) == resident }
            guard let w = list.max(by: { $0.slope < $1.slope }) else { return "\(prefix): no series" }
            return "\(prefix) (\(list.count) series) at most \(String(format: "%+.1f", w.slope)) MiB/h (\(w.name), \(mib(w.first)) → \(mib(w.last)) MiB in \(Int(w.span)) s)"
        }
        add("memory has no upward trend", problems,
            ok: "\(worst("coordinator")) live heap less SQLite's (SQLite at most \(mib(sqlitePeak)) MiB, bound \(mib(Self.sqliteBound))); \(worst("agent")); shown only: \(worst("coordinator", resident: true)); \(figures.short) series too short to fit; limit \(Int(Self.maxSlope)) MiB/h unless the fit grows under \(Int(Self.maxGrowth)) MiB, judged over \(Int(Self.minJudgedSpan / 60)) min or more (\(figures.trends.filter { $0.span < Self.minJudgedSpan }.count) shorter series shown only)")
    }

    /// No host was declared down, and no attempt lost, because the coordinator slept: nothing
    /// of the kind is recorded from a SIGSTOP until 10 s (the hosts' grace after a wake) plus
    /// 1 s after its SIGCONT, or until the next fault began if that is sooner (its own losses
    /// are not the sleep's). Nor are the losses of a fault on the host (or its bastion) in the
    /// `hostFaultWindow` before the SIGSTOP: a shim killed just before it is applied after it.
    mutating func checkNoRerunForSleep(_ events: [AuditEvent], sleeps: [(from: Double, to: Double)], faultBegins: [Double],
                                       hostFaults: [(hosts: Set<String>, at: Double)] = []) {
        var problems: [String] = []
        for s in sleeps {
            let end = min(s.to + 11, faultBegins.filter { $0 > s.to }.min() ?? .infinity)
            let struck = hostFaults.filter { $0.at <= s.from && $0.at >= s.from - Self.hostFaultWindow }.reduce(into: Set<String>()) { $0.formUnion($1.hosts) }
            for e in events where e.time >= s.from && e.time <= end && !(e.host.map(struck.contains) ?? false) {
                if (e.kind == "host" && e.state == "down") || (e.kind == "attempt" && e.state == "lost") {
                    problems.append("\(e.message) (\(String(format: "%.1f", e.time - s.to)) s after a SIGCONT of the coordinator)")
                }
            }
        }
        add("no re-run for a coordinator's sleep", problems, ok: "\(sleeps.count) sleep(s), no host down or attempt lost because of them")
    }

    /// How long before a coordinator's SIGSTOP a fault on a host may still show its losses
    /// (a killed shim, a powered-off host) after the SIGCONT, seconds: the coordinator applies
    /// them when it runs again.
    static let hostFaultWindow = 30.0

    /// The coordinator never exited unless the soak killed it.
    mutating func checkNoCrash(_ crashes: [String]) {
        add("coordinator never crashed", crashes, ok: "only the injected kill -9s")
    }

    /// The table, one row per invariant.
    func table() -> String {
        let width = max(30, (rows.map(\.name.count).max() ?? 0) + 2)
        var out = "invariant".padding(toLength: width, withPad: " ", startingAt: 0) + "result  detail\n"
        for r in rows {
            out += r.name.padding(toLength: width, withPad: " ", startingAt: 0) + (r.ok ? "PASS    " : "FAIL    ") + r.detail + "\n"
        }
        return out
    }

    var passed: Bool { rows.allSatisfy(\.ok) }
}
