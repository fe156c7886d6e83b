import Foundation

/// The journal's retention (`drover gc --before`): it keeps every job and audit line until
/// told otherwise. Results folders are never touched.
extension Journal {
    /// What a pruning removed (or would remove).
    public struct Pruning: Sendable, Equatable {
        public var jobs = 0
        public var attempts = 0
        public var events = 0
        public var batches = 0
    }

    /// Finished jobs that ended before `cutoff` (a batch's only once the whole batch finished
    /// before it): the condition on `jobs` rows.
    static let prunableJobs = """
        state IN \(JobState.finalSQL) AND coalesce(ended_at, submitted_at) < ?1
        AND (batch IS NULL OR batch IN (SELECT name FROM batches WHERE finished_at IS NOT NULL AND finished_at < ?1))
        """

    /// Removes finished jobs that ended before `cutoff` with their attempts and audit lines,
    /// audit lines before `cutoff` that name no job, and batches finished before it that have no
    /// job left. Live jobs, and jobs of batches still running, stay. `dryRun`: only counts.
    public func prune(before cutoff: Double, dryRun: Bool = false) throws -> Pruning {
        try db.transaction {
            let t = SQLValue.double(cutoff)
            var p = Pruning()
            let jobs = "SELECT id FROM jobs WHERE \(Self.prunableJobs)"
            p.jobs = try count("SELECT count(*) AS n FROM jobs WHERE \(Self.prunableJobs)", t)
            p.attempts = try count("SELECT count(*) AS n FROM attempts WHERE job IN (\(jobs))", t)
            p.events = try count("SELECT count(*) AS n FROM events WHERE job IN (\(jobs)) OR (job IS NULL AND time < ?1)", t)
            if dryRun {
                p.batches = try count("""
                    SELECT count(*) AS n FROM batches b WHERE finished_at IS NOT NULL AND finished_at < ?1
                    AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch=b.name AND NOT (\(Self.prunableJobs)))
                    """, t)
                return p
            }
            _ = try db.run("DELETE FROM events WHERE job IN (\(jobs)) OR (job IS NULL AND time < ?1)", t)
            _ = try db.run("DELETE FROM attempts WHERE job IN (\(jobs))", t)
            try forgetCheckpoints(ofJobsIn: jobs, t)
            _ = try db.run("DELETE FROM jobs WHERE \(Self.prunableJobs)", t)
            p.batches = try db.run("""
                DELETE FROM batches WHERE finished_at IS NOT NULL AND finished_at < ?1
                AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch=batches.name)
                """, t)
            return p
        }
    }

    private func count(_ sql: String, _ value: SQLValue) throws -> Int {
        try db.query(sql, value).first?.int("n") ?? 0
    }
}
