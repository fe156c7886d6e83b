import Foundation

/// Attempts: what commands read, and what the coordinator's staging and result fetching write.
extension Journal {
    static let attemptColumns = "job, attempt, host, state, agent_state, stale, started_at, ended_at, exit_code, signal, reason, max_rss_bytes, cpu_seconds"

    func attempt(from r: SQLRow) -> AttemptRecord {
        AttemptRecord(job: r.int("job") ?? 0, attempt: r.int("attempt") ?? 0, host: r.string("host") ?? "", state: r.string("state") ?? "",
                      agentState: r.string("agent_state"), stale: r.int("stale") == 1, startedAt: r.double("started_at"),
                      endedAt: r.double("ended_at"), exitCode: r.int("exit_code"), signal: r.string("signal"), reason: r.string("reason"),
                      maxRSSBytes: r.int("max_rss_bytes"), cpuSeconds: r.double("cpu_seconds"))
    }

    /// A job's attempts, in order.
    public func attempts(of job: Int) throws -> [AttemptRecord] {
        try db.query("SELECT \(Self.attemptColumns) FROM attempts WHERE job=? ORDER BY attempt", .int(Int64(job))).map(attempt(from:))
    }

    /// One attempt, or nil.
    public func attempt(_ job: Int, _ n: Int) throws -> AttemptRecord? {
        try db.query("SELECT \(Self.attemptColumns) FROM attempts WHERE job=? AND attempt=?", .int(Int64(job)), .int(Int64(n))).first.map(attempt(from:))
    }

    /// Attempts the agents may still be running (not known to have ended there).
    public func liveAttempts(on host: String? = nil) throws -> [AttemptRecord] {
        let condition = "(agent_state IS NULL OR agent_state NOT IN \(AgentStates.finalSQL))"
        if let host {
            return try db.query("SELECT \(Self.attemptColumns) FROM attempts WHERE host=? AND \(condition)", .text(host)).map(attempt(from:))
        }
        return try db.query("SELECT \(Self.attemptColumns) FROM attempts WHERE \(condition)").map(attempt(from:))
    }

    /// Slot numbers (`{%}`) held by live attempts on a host.
    public func slotsInUse(on host: String) throws -> Set<Int> {
        Set(try db.query("""
            SELECT slot FROM attempts WHERE host=? AND stale=0 AND slot IS NOT NULL AND state IN ('dispatched','accepted','starting','running')
            """, .text(host)).compactMap { $0.int("slot") })
    }

    /// Ends an attempt whose inputs could not be placed on its host (unless the agent
    /// reported on it meanwhile); true when it did.
    @discardableResult
    public func markStartFailed(job id: Int, attempt n: Int, reason: String, at time: Double) throws -> Bool {
        try db.run("UPDATE attempts SET state='start_failed', agent_state='start_failed', reason=?, ended_at=? WHERE job=? AND attempt=? AND agent_state IS NULL",
                   .text(reason), .double(time), .int(Int64(id)), .int(Int64(n))) > 0
    }

    /// The current attempts on `host` that the agent reported over while their job is not
    /// concluded yet: results still to fetch (or to conclude without).
    public func endedUnconcluded(on host: String) throws -> [(job: Int, attempt: Int, agentState: String)] {
        return try db.query("""
            SELECT j.id AS id, a.attempt AS attempt, a.agent_state AS st FROM jobs j JOIN attempts a ON a.job=j.id AND a.attempt=j.attempt
            WHERE j.host=? AND j.state IN ('dispatched','running') AND a.stale=0 AND a.agent_state IN \(AgentStates.finalSQL)
            """, .text(host)).compactMap { r in
            guard let id = r.int("id"), let n = r.int("attempt"), let st = r.string("st") else { return nil }
            return (id, n, st)
        }
    }
}
