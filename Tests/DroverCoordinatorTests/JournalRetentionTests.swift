import DroverProtocol
import Foundation
import Testing
@testable import DroverCoordinator

/// `drover gc --before`: old finished jobs, their attempts and events go; nothing else does.
@Suite("Journal retention")
struct JournalRetentionTests {
    @Test func pruneRemovesOldFinishedJobsAndTheirEventsOnly() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let now = Date().timeIntervalSince1970
        let old = now - 40 * 86_400
        func job(_ state: String, endedAt: Double?, batch: String? = nil) throws -> Int {
            let id = try j.submit(JobRequest(argv: ["true"]))
            try j.db.run("UPDATE jobs SET state=?, ended_at=?, submitted_at=?, batch=? WHERE id=?",
                         .text(state), .from(endedAt), .double(endedAt ?? now), .from(batch), .int(Int64(id)))
            try j.db.run("INSERT INTO attempts(job, attempt, host, state, dispatched_at) VALUES (?, 1, 'h1', 'exited', ?)", .int(Int64(id)), .double(old))
            try j.audit("attempt", job: id, attempt: 1, host: "h1", "attempt 1", time: endedAt ?? now)
            return id
        }
        let oldDone = try job("succeeded", endedAt: old)
        let oldFailed = try job("failed", endedAt: old)
        let recent = try job("succeeded", endedAt: now - 86_400)
        let running = try job("running", endedAt: nil)
        try j.db.run("UPDATE jobs SET submitted_at=? WHERE id=?", .double(old), .int(Int64(running)))
        // A batch still running keeps its old finished jobs; a batch finished long ago goes with its jobs.
        try j.db.run("INSERT INTO batches(name, results, submitted_at, finished_at) VALUES ('live', '/r/live', ?, NULL), ('done', '/r/done', ?, ?)",
                     .double(old), .double(old), .double(old))
        let inLiveBatch = try job("succeeded", endedAt: old, batch: "live")
        let inDoneBatch = try job("succeeded", endedAt: old, batch: "done")
        try j.audit("host", host: "h1", "an old host line", time: old)
        try j.audit("host", host: "h1", "a recent host line", time: now)

        let dry = try j.prune(before: now - 30 * 86_400, dryRun: true)
        #expect(dry == Journal.Pruning(jobs: 3, attempts: 3, events: 7, batches: 1), "\(dry)")
        #expect(try j.job(oldDone) != nil, "a dry run removes nothing")

        let done = try j.prune(before: now - 30 * 86_400)
        #expect(done == dry)
        for id in [oldDone, oldFailed, inDoneBatch] {
            #expect(try j.job(id) == nil)
            #expect(try j.attempts(of: id).isEmpty && j.events(job: id).isEmpty)
        }
        for id in [recent, running, inLiveBatch] {
            #expect(try j.job(id) != nil && !j.attempts(of: id).isEmpty && !j.events(job: id).isEmpty)
        }
        let hostLines = try j.events().filter { $0.job == nil }.map(\.message)
        #expect(hostLines == ["a recent host line"])
        #expect(try j.batch(named: "live") != nil && j.batch(named: "done") == nil)
        #expect(try j.prune(before: now - 30 * 86_400) == Journal.Pruning(), "nothing left to remove")
    }

    /// The checkpoint store keeps the files of snapshots that may still be restored (jobs not
    /// succeeded), young files (a pull in flight) and nothing else; `prune` of a job with a
    /// snapshot works (its checkpoints row would otherwise block the delete).
    @Test func theCheckpointStoreKeepsOnlyWhatASnapshotMayStillNeed() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let now = Date().timeIntervalSince1970
        let store = j.checkpointStore
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        func blob(_ name: String, age: Double) throws {
            let path = store + "/" + name
            try Data(name.utf8).write(to: URL(fileURLWithPath: path))
            var times = [timespec(tv_sec: Int(now - age), tv_nsec: 0), timespec(tv_sec: Int(now - age), tv_nsec: 0)]
            #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        }
        func job(_ state: String, snapshot files: [String], attempt: Int = 1, index: Int = 1) throws -> Int {
            let id = try j.submit(JobRequest(argv: ["true"]))
            try j.db.run("UPDATE jobs SET state=?, ended_at=? WHERE id=?", .text(state), .double(now - 40 * 86_400), .int(Int64(id)))
            let event = CheckpointEvent(job: "c-\(id)", attempt: attempt, index: index, takenAt: now, reason: "interval",
                                        files: files.map { CheckpointFile(path: $0, size: 1, sha256: $0) })
            try j.recordCheckpoint(job: id, host: "h1", event, storedAt: now)
            return id
        }
        for name in ["running-new", "running-old", "failed", "succeeded", "shared", "orphan", ".pull-x-1"] { try blob(name, age: 7200) }
        try blob("young", age: 5)
        let running = try job("running", snapshot: ["running-old", "shared"])
        // A newer snapshot replaces the older one: its own file is no longer named.
        _ = try j.recordCheckpoint(job: running, host: "h1", CheckpointEvent(job: "c-\(running)", attempt: 1, index: 2, takenAt: now, reason: "interval",
                                                                            files: [CheckpointFile(path: "running-new", size: 1, sha256: "running-new"), CheckpointFile(path: "shared", size: 1, sha256: "shared")]), storedAt: now)
        _ = try job("failed", snapshot: ["failed"])
        _ = try job("succeeded", snapshot: ["succeeded", "shared"])

        let pruned = try j.pruneCheckpointStore(now: now)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: store))
        #expect(left == ["running-new", "shared", "failed", "young"], "\(left)")
        #expect(pruned.files == 4)

        // drover gc: the failed job goes with its snapshot, and then its file.
        let p = try j.prune(before: now - 30 * 86_400)
        #expect(p.jobs == 2)
        try j.pruneCheckpointStore(now: now)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: store)) == ["running-new", "shared", "young"])
    }
}
