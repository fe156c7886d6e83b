import Foundation

/// The reads of `drover serve` (the dashboard and its API) that no command needs.
extension Journal {
    /// Attempts that ran or run within `[from, to]` (started before `to`, not ended before
    /// `from`), oldest first: the timeline.
    public func attempts(overlapping from: Double, _ to: Double, limit: Int = 5_000) throws -> [AttemptRecord] {
        try db.query("""
            SELECT \(Self.attemptColumns) FROM attempts WHERE started_at IS NOT NULL AND started_at<=?
            AND (ended_at IS NULL OR ended_at>=?) ORDER BY started_at LIMIT ?
            """, .double(to), .double(from), .int(Int64(limit))).map(attempt(from:))
    }

    /// Attempts by state and reason (the reason's first word), for `/metrics`.
    public func attemptCounts() throws -> [(state: String, reason: String, count: Int)] {
        try db.query("SELECT state, COALESCE(agent_state, '') AS why, COUNT(*) AS n FROM attempts GROUP BY state, why").map {
            ($0.string("state") ?? "", $0.string("why") ?? "", $0.int("n") ?? 0)
        }
    }

    /// Host events (`host` kind) since `time`, oldest first: the down and up marks of the timeline.
    public func hostEvents(since time: Double) throws -> [AuditEvent] {
        try db.query("SELECT * FROM events WHERE kind='host' AND time>=? ORDER BY id", .double(time)).map { r in
            AuditEvent(id: r.int("id") ?? 0, time: r.double("time") ?? 0, kind: r.string("kind") ?? "", job: r.int("job"),
                       attempt: r.int("attempt"), host: r.string("host"), state: r.string("state"), message: r.string("message") ?? "")
        }
    }
}
