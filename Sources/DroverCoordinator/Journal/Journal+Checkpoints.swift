import DroverCore
import DroverProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

    /// What `pruneCheckpointStore` removed.
    public struct StorePruning: Sendable, Equatable {
        public var files = 0
        public var bytes: Int64 = 0
    }

    /// Removes store files that no kept snapshot names: snapshots are kept for jobs that did
    /// not succeed (a failed or cancelled one may be retried). A file younger than `grace` stays
    /// (a pull may have just landed or reused it, before its snapshot is recorded; a pull that
    /// reuses a stored file touches it), and so does a pull's temporary file younger than an hour.
    @discardableResult
    public func pruneCheckpointStore(now: Double, grace: Double = 600) throws -> StorePruning {
        let store = checkpointStore
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: store), !names.isEmpty else { return StorePruning() }
        var kept = Set<String>()
        for r in try db.query("SELECT c.files FROM checkpoints c JOIN jobs j ON j.id=c.job WHERE j.state != 'succeeded'") {
            let files = (try? JSONDecoder().decode([CheckpointFile].self, from: Data((r.string("files") ?? "[]").utf8))) ?? []
            for f in files { kept.insert(f.sha256) }
        }
        var p = StorePruning()
        for name in names where !kept.contains(name) {
            let path = store + "/" + name
            guard let modified = try? FileStatus.of(path).modified, now - modified > (name.hasPrefix(".") ? max(grace, 3600) : grace) else { continue }
            let size = Int64(LocalFile.size(path) ?? 0)
            if unlink(path) == 0 { p.files += 1; p.bytes += size }
        }
        return p
    }

    /// Forgets the snapshots of jobs about to be removed from the journal (`prune`).
    func forgetCheckpoints(ofJobsIn jobs: String, _ value: SQLValue) throws {
        _ = try db.run("DELETE FROM checkpoints WHERE job IN (\(jobs))", value)
    }

    /// Queues a job again at once, counting neither a failure nor a host loss (a checkpoint exit).
    func requeueAtOnce(_ job: Int) throws {
        try db.run("UPDATE jobs SET state='queued', host=NULL, not_before=NULL WHERE id=?", .int(Int64(job)))
    }
}
