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
}
