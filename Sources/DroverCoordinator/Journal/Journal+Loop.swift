extension Journal {
    /// Whether any job is not over yet (waiting, queued, dispatched, running…): the
    /// coordinator's idle exit waits for none, and commands start a gone coordinator for one.
    public func hasOpenJobs() throws -> Bool {
        try !db.query("SELECT 1 FROM jobs WHERE state IN \(JobState.openSQL) LIMIT 1").isEmpty
    }
}

extension Journal {
    /// The time (Unix seconds) of the newest event recorded, if any: how fresh the states are
    /// when no coordinator runs.
    public func lastEventTime() throws -> Double? {
        try db.query("SELECT MAX(time) AS t FROM events").first?.double("t")
    }
}
