import DroverCore
import DroverProtocol
import Foundation

/// A host's facts as last collected by its agent.
public struct HostFactsRecord: Sendable {
    public var host: String
    public var report: HostFactsReport
    public var collectedAt: Double
}

extension Journal {
    /// Format 6 (issue 17): the facts of each host, as its agent reported them (JSON) and when.
    static func addHostFacts(_ db: SQLiteDatabase) throws {
        for (column, definition) in [("facts", "TEXT"), ("facts_at", "REAL")] {
            let have = try db.query("PRAGMA table_info(hosts)").contains { $0.string("name") == column }
            if !have { try db.execute("ALTER TABLE hosts ADD COLUMN \(column) \(definition)") }
        }
    }

    /// Records a host's facts (the row exists once the coordinator has seen the host).
    public func setFacts(_ host: String, _ report: HostFactsReport, at time: Double = Date().timeIntervalSince1970) throws {
        let text = report.jsonObject.text
        let n = try db.run("UPDATE hosts SET facts=?, facts_at=? WHERE name=?", .text(text), .double(time), .text(host))
        if n == 0 {
            try db.run("INSERT INTO hosts(name, state, since, facts, facts_at) VALUES (?, 'unknown', ?, ?, ?)", .text(host), .double(time), .text(text), .double(time))
        }
    }

    /// Every host's last collected facts, by host name.
    public func hostFacts() throws -> [String: HostFactsRecord] {
        try Self.readHostFacts(db)
    }

    /// The facts in a journal database (also for readers that must not write, like --dry-run).
    public static func readHostFacts(_ db: SQLiteDatabase) throws -> [String: HostFactsRecord] {
        let has = try db.query("PRAGMA table_info(hosts)").contains { $0.string("name") == "facts" }
        guard has else { return [:] }
        var out: [String: HostFactsRecord] = [:]
        for r in try db.query("SELECT name, facts, facts_at FROM hosts WHERE facts IS NOT NULL") {
            guard let name = r.string("name"), let text = r.string("facts"), let node = try? JSONParser.parse(text) else { continue }
            out[name] = HostFactsRecord(host: name, report: HostFactsReport.parse(node), collectedAt: r.double("facts_at") ?? 0)
        }
        return out
    }

    /// GPUs held by unfinished attempts, by host (from their jobs' requests).
    public func gpusInUse() throws -> [String: Int] {
        var out: [String: Int] = [:]
        for r in try db.query("""
            SELECT a.host AS host, j.request AS request FROM attempts a JOIN jobs j ON j.id = a.job
            WHERE a.state IN ('dispatched','accepted','starting','running') AND a.stale = 0 AND j.request LIKE '%"gpus"%'
            """) {
            guard let host = r.string("host"), let text = r.string("request"),
                  let request = try? JSONDecoder().decode(JobRequest.self, from: Data(text.utf8)), let n = request.gpus, n > 0 else { continue }
            out[host, default: 0] += n
        }
        return out
    }

    /// Sets (or clears) a job's reason: a queued job's note on why it waits.
    func setReason(_ job: Int, _ reason: String?) throws {
        try db.run("UPDATE jobs SET reason=? WHERE id=?", .from(reason), .int(Int64(job)))
    }
}
