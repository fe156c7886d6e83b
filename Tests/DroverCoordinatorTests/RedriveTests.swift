import DroverCore
import Testing
@testable import DroverCoordinator

@Suite("Dead letters and re-drive (journal)")
struct RedriveTests {
    /// A batch a → b → c and a lone d; a failed, b and c skipped because of it, d failed too.
    func failedBatch(_ j: Journal) throws -> [String: Int] {
        let jobs: [(String, [String])] = [("a", []), ("b", ["a"]), ("c", ["b"]), ("d", [])]
        let spec = BatchSpec(name: "p", jobs: jobs.map { id, after in
            var r = JobRequest(shell: "true")
            r.after = after.isEmpty ? nil : after.map { Dependency(job: $0) }
            r.retries = 2
            return BatchJob(id: id, request: r, path: id)
        })
        let ids = try j.submitBatch(spec, results: "/tmp/unused").ids
        // What the coordinator would have recorded (the loop itself is tested on the testbed).
        try j.db.run("UPDATE jobs SET state='failed', attempt=3, failures=3, reason='exited 1; failed 3 time(s)', exit_code=1, ended_at=1 WHERE id IN (?, ?)",
                     .int(Int64(ids["a"]!)), .int(Int64(ids["d"]!)))
        try j.db.run("UPDATE jobs SET state='skipped', reason='a failed (after a:ok)', ended_at=1 WHERE id IN (?, ?)", .int(Int64(ids["b"]!)), .int(Int64(ids["c"]!)))
        try j.db.run("INSERT INTO attempts(job, attempt, host, state, dispatched_at, stderr_head) VALUES (?, 3, 'h1', 'exited', 1, 'boom')", .int(Int64(ids["a"]!)))
        try j.markBatchFinished("p", at: 2)
        return ids
    }

    @Test func failedJobsAreListedWithTheHeadOfTheirStderr() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let ids = try failedBatch(j)
        let letters = try j.deadLetters()
        #expect(letters.map(\.job.id) == [ids["a"]!, ids["d"]!])
        #expect(letters.first?.stderrHead == "boom" && letters.first?.job.reason?.contains("exited 1") == true)
    }

    @Test func aRetriedJobWaitsAgainWithItsHistoryAndItsSkippedDependentsAreReleased() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let ids = try failedBatch(j)
        let out = try j.redrive([ids["a"]!], resetBudget: false, by: "ada")
        #expect(out.count == 1 && out[0].refused == nil && Set(out[0].released) == ["p/b", "p/c"])
        let a = try #require(try j.job(ids["a"]!))
        // A batch job goes back to `waiting` (its dependencies are checked again); the attempt
        // number and the failures are kept: one more attempt.
        #expect(a.state == .waiting && a.attempt == 3 && a.failures == 3 && a.reason == nil && a.exitCode == nil)
        #expect(try j.job(ids["b"]!)?.state == .waiting && j.job(ids["c"]!)?.state == .waiting)
        #expect(try j.job(ids["d"]!)?.state == .failed)
        #expect(try j.batch(named: "p")?.finishedAt == nil)
        let audit = try j.events(job: ids["a"]!).filter { $0.kind == "retry" }
        #expect(audit.count == 1 && audit[0].message.contains("re-driven by ada") && audit[0].message.contains("attempt 4 next"))
        #expect(try j.events(job: ids["b"]!).contains { $0.kind == "retry" && $0.message.contains("p/a") })
    }

    @Test func resetBudgetGivesTheFullRetriesAgainAndRunningJobsAreRefused() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let lone = try j.submit(JobRequest(argv: ["false"]))
        try j.db.run("UPDATE jobs SET state='failed', attempt=2, failures=2, losses=1 WHERE id=?", .int(Int64(lone)))
        let running = try j.submit(JobRequest(argv: ["sleep", "9"]))
        try j.db.run("UPDATE jobs SET state='running', attempt=1 WHERE id=?", .int(Int64(running)))
        let out = try j.redrive([lone, running], resetBudget: true, by: "ada")
        #expect(out[0].refused == nil && out[1].refused == "running")
        let job = try #require(try j.job(lone))
        #expect(job.state == .queued && job.failures == 0 && job.losses == 0 && job.attempt == 2)
        #expect(try j.job(running)?.state == .running)
    }

    @Test func aSkippedJobIsNotRetriedByItself() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let ids = try failedBatch(j)
        let out = try j.redrive([ids["b"]!], resetBudget: false, by: "ada")
        #expect(out[0].refused?.contains("retry the job it waits for") == true)
        #expect(try j.job(ids["b"]!)?.state == .skipped)
    }
}
