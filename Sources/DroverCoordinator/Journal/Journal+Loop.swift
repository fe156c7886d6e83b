extension Journal {
    /// Whether any job is not over yet (the coordinator's idle exit waits for none).
    func hasOpenJobs() throws -> Bool {
        try !db.query("SELECT 1 FROM jobs WHERE state IN \(JobState.openSQL) LIMIT 1").isEmpty
    }
}
