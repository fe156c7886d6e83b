/// A batch as one instant of the journal saw it: its jobs and the hosts, and the audit events
/// of its jobs since the last reading, up to exactly that instant.
public struct BatchReading: Sendable {
    /// The batch's current jobs.
    public var jobs: [JobRecord]
    public var hosts: [HostRecord]
    /// Events of the batch's jobs after the id asked for, oldest first.
    public var events: [AuditEvent]
    /// The newest event id of the journal at that instant (the next reading starts after it).
    public var lastEvent: Int
    /// Whether `events` holds every event up to `lastEvent` (false when the limit cut them).
    public var complete: Bool
}

extension Journal {
    /// Reads a batch's jobs, the hosts and the events of its jobs after `after` (none when nil)
    /// in one read transaction, so the jobs' states are exactly where the events end.
    public func batchReading(_ batch: String, eventsAfter after: Int?, limit: Int = 10_000) throws -> BatchReading {
        let own = !db.inTransaction
        if own { try db.execute("BEGIN") }
        defer { if own { try? db.execute("COMMIT") } }
        let jobs = try batchJobs(batch)
        let hosts = try self.hosts()
        let last = try lastEventID()
        guard let after else { return BatchReading(jobs: jobs, hosts: hosts, events: [], lastEvent: last, complete: true) }
        let events = try self.events(after: after, jobs: jobs.map(\.id), limit: limit)
        let complete = events.count < limit
        return BatchReading(jobs: jobs, hosts: hosts, events: events, lastEvent: complete ? last : events.last?.id ?? after, complete: complete)
    }
}

extension Journal {
    /// What changed in a batch since audit event `after`, in one read transaction: the batch's
    /// jobs that the events after it name (a job's row changes with an event of it), the hosts,
    /// and those events. `drover map` and `batch run` read this between full readings, so
    /// following a batch of N jobs costs per commit what the commit changed, not N rows.
    public func batchChanges(_ batch: String, eventsAfter after: Int, limit: Int = 10_000) throws -> BatchReading {
        let own = !db.inTransaction
        if own { try db.execute("BEGIN") }
        defer { if own { try? db.execute("COMMIT") } }
        let all = try events(after: after, limit: limit)
        let complete = all.count < limit
        let last = complete ? try lastEventID() : all.last?.id ?? after
        let named = Set(all.compactMap(\.job))
        guard !named.isEmpty else { return BatchReading(jobs: [], hosts: try hosts(), events: [], lastEvent: last, complete: complete) }
        let list = "[" + named.sorted().map(String.init).joined(separator: ",") + "]"
        let jobs = try db.query("SELECT \(Self.jobColumns) FROM jobs WHERE batch=? AND superseded=0 AND id IN (SELECT value FROM json_each(?)) ORDER BY id",
                                .text(batch), .text(list)).compactMap(job(from:))
        let ours = Set(jobs.map(\.id))
        return BatchReading(jobs: jobs, hosts: try hosts(), events: all.filter { $0.job.map(ours.contains) ?? false }, lastEvent: last, complete: complete)
    }
}
