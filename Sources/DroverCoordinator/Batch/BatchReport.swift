import DroverCore
import Foundation

/// A batch's report: every job with every attempt, per-host figures and totals
/// (`results/<batch>/report.json`, schema in docs/batch-report.schema.json).
public struct BatchReport: Sendable {
    public struct Job: Sendable {
        public var record: JobRecord
        public var attempts: [AttemptRecord]
        /// Its compensation job and that job's attempts, once the saga made one.
        public var compensation: (record: JobRecord, attempts: [AttemptRecord])? = nil
    }

    /// Per-host figures over the batch's attempts.
    public struct Host: Sendable {
        public var name: String
        public var slots: Int?
        public var attempts = 0
        public var succeeded = 0
        /// Slot-seconds of attempts on the host.
        public var busySeconds = 0.0
        public var cpuSeconds = 0.0
    }

    public var batch: BatchRecord
    public var jobs: [Job]
    public var hosts: [Host]
    public var generatedAt: Double

    /// Reads the batch's current jobs and their attempts from the journal.
    public static func build(_ journal: Journal, batch: BatchRecord) throws -> BatchReport {
        let records = try journal.batchJobs(batch.name)
        let slots = Dictionary(try journal.hosts().map { ($0.name, $0.slots) }) { a, _ in a }
        var jobs: [Job] = []
        var hosts: [String: Host] = [:]
        for r in records {
            let attempts = try journal.attempts(of: r.id)
            let compensation = try r.compensationJob.flatMap { try journal.job($0) }.map { ($0, try journal.attempts(of: $0.id)) }
            jobs.append(Job(record: r, attempts: attempts, compensation: compensation))
            for a in attempts {
                var h = hosts[a.host] ?? Host(name: a.host, slots: slots[a.host] ?? nil)
                h.attempts += 1
                if a.agentState == "exited" && a.exitCode == 0 && !a.stale { h.succeeded += 1 }
                if let s = a.startedAt, let e = a.endedAt { h.busySeconds += max(0, e - s) * Double(r.request.slots) }
                h.cpuSeconds += a.cpuSeconds ?? 0
                hosts[a.host] = h
            }
        }
        return BatchReport(batch: batch, jobs: jobs, hosts: hosts.values.sorted { $0.name < $1.name }, generatedAt: Date().timeIntervalSince1970)
    }

    public func count(_ state: JobState) -> Int { jobs.count { $0.record.state == state } }

    /// Every attempt of every job, without gathering them into one array.
    var allAttempts: FlattenSequence<LazyMapSequence<[Job], [AttemptRecord]>> { jobs.lazy.map(\.attempts).joined() }

    /// From the first start to the last end (or now), seconds.
    public var span: Double {
        guard let first = allAttempts.compactMap(\.startedAt).min() else { return 0 }
        return max(0, (allAttempts.compactMap(\.endedAt).max() ?? generatedAt) - first)
    }

    // MARK: JSON

    /// The report as JSON (format 1).
    public var json: String {
        var o = JSONObject()
        o.set("format", 1)
        o.set("batch", batch.name)
        o.set("file", batch.file)
        o.set("policy", batch.compensateOnFailure ? "compensate-on-failure" : batch.failFast ? "fail-fast" : "keep-going")
        o.set("generation", batch.generation)
        o.set("submitted_at", batch.submittedAt)
        o.set("finished_at", batch.finishedAt)
        o.set("generated_at", generatedAt)
        o.set("results", batch.folder)
        var totals = JSONObject()
        totals.set("jobs", jobs.count)
        for s in JobState.allCases where s.isFinal { totals.set(s.rawValue, count(s)) }
        totals.set("unfinished", jobs.count { !$0.record.state.isFinal })
        let attempts = allAttempts
        totals.set("attempts", jobs.reduce(0) { $0 + $1.attempts.count })
        totals.set("lost_attempts", attempts.count { $0.state == "lost" || $0.agentState == "lost" || $0.agentState == "orphaned" })
        totals.set("span_seconds", Self.round(span))
        totals.set("cpu_seconds", Self.round(attempts.reduce(0) { $0 + ($1.cpuSeconds ?? 0) }))
        o.set("totals", object: totals)
        o.set("hosts", objects: hosts.map { h in
            var e = JSONObject()
            e.set("name", h.name)
            e.set("slots", h.slots)
            e.set("attempts", h.attempts)
            e.set("succeeded", h.succeeded)
            e.set("busy_seconds", Self.round(h.busySeconds))
            e.set("cpu_seconds", Self.round(h.cpuSeconds))
            e.set("utilisation", utilisation(h).map(Self.round))
            e.set("jobs_per_minute", jobsPerMinute(h).map(Self.round))
            return e
        })
        o.set("jobs", objects: jobs.map(jobJSON))
        if let saga = sagaJSON { o.set("saga", object: saga) }
        return o.text
    }

    private func jobJSON(_ j: Job) -> JSONObject {
        let r = j.record
        var e = JSONObject()
        e.set("id", r.batchJob)
        e.set("journal_id", r.id)
        e.set("state", r.state.rawValue)
        e.set("reason", r.reason)
        e.set("command", r.request.commandLine)
        e.set("after", (r.request.after ?? []).map { "\($0.job):\($0.condition.rawValue)" })
        e.set("host", r.host)
        e.set("exit_code", r.exitCode)
        e.set("signal", r.signal)
        e.set("submitted_at", r.submittedAt)
        e.set("started_at", r.startedAt)
        e.set("ended_at", r.endedAt)
        e.set("results", batch.folder + "/" + (r.batchJob ?? String(r.id)))
        e.set("attempts", objects: j.attempts.map(Self.attemptJSON))
        if let c = compensationJSON(j) { e.set("compensation", object: c) }
        return e
    }

    static func attemptJSON(_ a: AttemptRecord) -> JSONObject {
            var x = JSONObject()
            x.set("attempt", a.attempt)
            x.set("host", a.host)
            x.set("state", a.agentState ?? a.state)
            x.set("stale", a.stale)
            x.set("start", a.startedAt)
            x.set("end", a.endedAt)
            x.set("exit_code", a.exitCode)
            x.set("signal", a.signal)
            x.set("reason", a.reason)
            x.set("max_rss_bytes", a.maxRSSBytes)
            x.set("cpu_seconds", a.cpuSeconds.map(Self.round))
            return x
    }

    func utilisation(_ h: Host) -> Double? {
        guard let slots = h.slots, slots > 0, span > 0 else { return nil }
        return min(1, h.busySeconds / (Double(slots) * span))
    }

    /// The least span (seconds) over which a rate per minute is shown: over a shorter one, a
    /// handful of jobs done in a second would read as thousands a minute.
    public static let rateWindow: Double = 30

    /// Jobs the host completed per minute over the batch's span; nil under `rateWindow`.
    func jobsPerMinute(_ h: Host) -> Double? {
        span >= Self.rateWindow ? Double(h.succeeded) / span * 60 : nil
    }

    static func round(_ d: Double) -> Double { (d * 1000).rounded() / 1000 }

    /// Writes the JSON report (creating its folder).
    public func write(to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try AtomicFile.write(Array((json + "\n").utf8), to: path, mode: 0o644)
    }

    // MARK: GNU parallel's joblog

    /// GNU parallel's `--joblog` format: a header, then one tab-separated line per job that ran
    /// (its last attempt): Seq Host Starttime JobRuntime Send Receive Exitval Signal Command.
    public var joblog: String {
        var lines = ["Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"]
        for (i, j) in jobs.enumerated() {
            guard let a = j.attempts.last(where: { !$0.stale }) ?? j.attempts.last, let start = a.startedAt else { continue }
            let runtime = (a.endedAt ?? generatedAt) - start
            let signal = a.signal.flatMap(Signals.number).map(String.init) ?? "0"
            let received = LocalFile.size(batch.folder + "/" + (j.record.batchJob ?? "") + "/stdout") ?? 0
            lines.append([String(i + 1), a.host, String(format: "%.3f", start), String(format: "%.3f", runtime), "0", String(received),
                          String(a.exitCode ?? -1), signal, j.record.request.commandLine.replacingOccurrences(of: "\n", with: " ")].joined(separator: "\t"))
        }
        lines += compensationJoblogLines(from: jobs.count + 1)
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: Terminal summary

    /// The summary for a terminal: counts, failures with their reasons and first stderr lines, hosts.
    public func summary(stderrLines: Int = 3) -> String {
        var out: [String] = []
        let states = JobState.allCases.filter(\.isFinal).map { "\(count($0)) \($0.rawValue)" }
        let open = jobs.count { !$0.record.state.isFinal }
        out.append("batch \(batch.name): \(states.joined(separator: ", "))\(open > 0 ? ", \(open) unfinished" : "") — \(jobs.count) job(s), \(jobs.reduce(0) { $0 + $1.attempts.count }) attempt(s) in \(Durations.clock(span))")
        let bad = jobs.filter { [.failed, .cancelled, .skipped].contains($0.record.state) }
        if !bad.isEmpty {
            out.append("")
            out.append("not succeeded:")
            for j in bad.prefix(20) {
                let r = j.record
                out.append("  \(r.batchJob ?? String(r.id))  \(r.state.rawValue): \(r.reason ?? "")\(j.attempts.count > 1 ? " (\(j.attempts.count) attempts)" : "")")
                if r.state == .failed {
                    let path = batch.folder + "/" + (r.batchJob ?? "") + "/stderr"
                    let text = (try? LocalFile.read(path)).map { String(decoding: $0.prefix(4096), as: UTF8.self) } ?? ""
                    for line in text.split(separator: "\n").prefix(stderrLines) { out.append("      | \(line.prefix(160))") }
                }
            }
            if bad.count > 20 { out.append("  … and \(bad.count - 20) more (see report.json)") }
        }
        if !hosts.isEmpty {
            out.append("")
            var rows = [["HOST", "ATTEMPTS", "SUCCEEDED", "BUSY", "UTILISATION", "JOBS/MIN"]]
            for h in hosts {
                rows.append([h.name, String(h.attempts), String(h.succeeded), Durations.clock(h.busySeconds),
                             utilisation(h).map { "\(Int(($0 * 100).rounded())) %" } ?? "-",
                             jobsPerMinute(h).map { String(format: "%.1f", $0) } ?? "-"])
            }
            out.append(TextTable.render(rows))
        }
        out += sagaSummary
        out.append("")
        out.append("results: \(batch.folder)/ (report.json, one folder per job)")
        return out.joined(separator: "\n")
    }
}
