extension Journal {
    /// Whether any job is not over yet (the coordinator's idle exit waits for none).
    func hasOpenJobs() throws -> Bool {
        try !db.query("SELECT 1 FROM jobs WHERE state IN \(JobState.openSQL) LIMIT 1").isEmpty
    }
}

extension Journal {
    /// Whether any job is not over (waiting, queued, dispatched, running…).
    public func hasUnfinishedJobs() throws -> Bool { try hasOpenJobs() }

    /// The time (Unix seconds) of the newest event recorded, if any: how fresh the states are
    /// when no coordinator runs.
    public func lastEventTime() throws -> Double? {
        try db.query("SELECT MAX(time) AS t FROM events").first?.double("t")
    }
}
