import DroverProtocol
import Foundation

/// A job's newest snapshot: its files are in the coordinator's store (`STATE/store/<sha256>`).
public struct CheckpointRecord: Sendable {
    public var job: Int
    public var attempt: Int
    public var index: Int
    public var host: String
    public var takenAt: Double
    public var storedAt: Double
    public var files: [CheckpointFile]

    public var bytes: Int { files.reduce(0) { $0 + $1.size } }
}

extension Journal {
    /// Format 6 (issue 14): the newest snapshot of each job.
    static let checkpointsSchema = """
        CREATE TABLE IF NOT EXISTS checkpoints (
            job INTEGER PRIMARY KEY REFERENCES jobs(id), attempt INTEGER NOT NULL, idx INTEGER NOT NULL,
            host TEXT NOT NULL, taken_at REAL NOT NULL, stored_at REAL NOT NULL, files TEXT NOT NULL);
        """

    /// The coordinator's content-addressed store of checkpoint files.
    public var checkpointStore: String { state.path + "/store" }

    /// Records a snapshot whose files are in the store, unless the job has a newer one; true when recorded.
    @discardableResult
    func recordCheckpoint(job: Int, host: String, _ c: CheckpointEvent, storedAt: Double) throws -> Bool {
        let files = String(decoding: try JSONEncoder().encode(c.files), as: UTF8.self)
        return try db.run("""
            INSERT INTO checkpoints(job, attempt, idx, host, taken_at, stored_at, files) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(job) DO UPDATE SET attempt=excluded.attempt, idx=excluded.idx, host=excluded.host,
                taken_at=excluded.taken_at, stored_at=excluded.stored_at, files=excluded.files
            WHERE excluded.attempt > checkpoints.attempt OR (excluded.attempt = checkpoints.attempt AND excluded.idx > checkpoints.idx)
            """, .int(Int64(job)), .int(Int64(c.attempt)), .int(Int64(c.index)), .text(host), .double(c.takenAt), .double(storedAt), .text(files)) > 0
    }

    /// The job's newest stored snapshot.
    public func checkpoint(of job: Int) throws -> CheckpointRecord? {
        guard let r = try db.query("SELECT * FROM checkpoints WHERE job=?", .int(Int64(job))).first,
              let files = try? JSONDecoder().decode([CheckpointFile].self, from: Data((r.string("files") ?? "[]").utf8)) else { return nil }
        return CheckpointRecord(job: job, attempt: r.int("attempt") ?? 0, index: r.int("idx") ?? 0, host: r.string("host") ?? "?",
                                takenAt: r.double("taken_at") ?? 0, storedAt: r.double("stored_at") ?? 0, files: files)
    }

    /// Queues a job again at once, counting neither a failure nor a host loss (a checkpoint exit).
    func requeueAtOnce(_ job: Int) throws {
        try db.run("UPDATE jobs SET state='queued', host=NULL, not_before=NULL WHERE id=?", .int(Int64(job)))
    }
}
