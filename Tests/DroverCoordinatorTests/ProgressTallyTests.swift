import Foundation
import Testing
@testable import DroverCoordinator

/// The progress display counts jobs as the journal had them at each event, and shows rates
/// only over a span long enough to mean something.
@Suite("Progress counts and rates")
struct ProgressTallyTests {
    /// Moves a job as the coordinator does: its state in `jobs` and one audit line, in one transaction.
    func move(_ j: Journal, _ id: Int, to state: JobState, attempt: Int = 1, kind: String = "job") throws {
        try j.db.transaction {
            if kind == "job" {
                try j.db.run("UPDATE jobs SET state=?, attempt=? WHERE id=?", .text(state.rawValue), .int(Int64(attempt)), .int(Int64(id)))
            } else {
                try j.db.run("UPDATE jobs SET state='running' WHERE id=? AND state IN ('dispatched','queued')", .int(Int64(id)))
            }
            try j.audit(kind, job: id, attempt: attempt, host: "h1", state: state.rawValue, "job \(id) \(state.rawValue)")
        }
    }

    @Test func eachChangeCountsTheJobsAsTheyWereAtItsEvent() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let spec = BatchSpec(name: "demo", jobs: ["a", "b"].map { BatchJob(id: $0, request: JobRequest(argv: ["true"]), path: $0) })
        let ids = try j.submitBatch(spec, results: t.base + "/results").ids
        let (a, b) = (ids["a"]!, ids["b"]!)
        let start = try j.batchReading("demo", eventsAfter: nil)
        var tally = ProgressTally(start.jobs)
        // The whole batch runs and ends before the display reads the journal again.
        try move(j, a, to: .dispatched)
        try move(j, b, to: .dispatched)
        try move(j, a, to: .running, kind: "attempt")
        try move(j, b, to: .running, kind: "attempt")
        try move(j, a, to: .succeeded)
        try move(j, b, to: .succeeded)
        let reading = try j.batchReading("demo", eventsAfter: start.lastEvent)
        #expect(reading.complete && reading.events.count == 6)
        var seen: [String] = []
        for e in reading.events {
            tally.apply(e)
            var p = BatchProgress(batch: "demo", total: 0)
            tally.count(into: &p)
            seen.append("\(p.done)/\(p.total) done, \(p.running) running, \(p.starting) starting")
        }
        #expect(seen == [
            "0/2 done, 0 running, 1 starting", "0/2 done, 0 running, 2 starting",
            "0/2 done, 1 running, 1 starting", "0/2 done, 2 running, 0 starting",
            "1/2 done, 1 running, 0 starting", "2/2 done, 0 running, 0 starting",
        ])
        var line = ProgressRenderer(mode: .lines(color: false))
        var then = BatchProgress(batch: "demo", total: 2)
        then.count([.running, .dispatched])
        let text = line.change(ProgressChange(time: 0, job: "a", attempt: 1, host: "h1", state: "running"), then)
        #expect(text.hasSuffix("a running on h1 (attempt 1) — 0/2 done, 1 running, 1 starting\n"), "\(text)")
    }

    /// A follower started after some jobs ended reads the batch's events from before its
    /// submission (`eventsBefore`): every job still gets its lines, each counted as it was then.
    @Test func eventsFromTheSubmissionOnShowJobsThatEndedBeforeTheFollowerStarted() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        try j.audit("host", "an earlier event")
        let spec = BatchSpec(name: "fast", jobs: ["a", "b"].map { BatchJob(id: $0, request: JobRequest(argv: ["true"]), path: $0) })
        let result = try j.submitBatch(spec, results: t.base + "/results")
        #expect(result.eventsBefore == 1)
        let a = try #require(result.ids["a"])
        try move(j, a, to: .dispatched)
        try move(j, a, to: .succeeded)
        // The follower starts only now, a already over: it reads from before the submission.
        let start = try j.batchReading("fast", eventsAfter: nil)
        var tally = ProgressTally(start.jobs)
        let reading = try j.batchReading("fast", eventsAfter: result.eventsBefore)
        var succeededAtEachEvent: [Int] = []
        for e in reading.events {
            tally.apply(e)
            var p = BatchProgress(batch: "fast", total: 0)
            tally.count(into: &p)
            succeededAtEachEvent.append(p.succeeded)
        }
        #expect(reading.events.contains { $0.job == a && $0.kind == "job" && $0.state == "succeeded" })
        #expect(succeededAtEachEvent.first == 0, "the submitted event puts a back where it began: \(succeededAtEachEvent)")
        #expect(succeededAtEachEvent.last == 1)
    }

    @Test func aReplacedAttemptStartingMovesNothing() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let spec = BatchSpec(name: "demo", jobs: [BatchJob(id: "a", request: JobRequest(argv: ["true"]), path: "a")])
        let a = try j.submitBatch(spec, results: t.base + "/results").ids["a"]!
        try move(j, a, to: .dispatched, attempt: 2)
        let start = try j.batchReading("demo", eventsAfter: nil)
        var tally = ProgressTally(start.jobs)
        try j.audit("attempt", job: a, attempt: 1, host: "h2", state: "running", "attempt 1 of job a on h2: running (replaced)")
        for e in try j.batchReading("demo", eventsAfter: start.lastEvent).events { tally.apply(e) }
        #expect(tally.states[a] == .dispatched)
    }

    /// A follower reads every job of its batch every few seconds: with the cache above the
    /// batch's size each request is decoded once; at a smaller limit a larger batch cleared
    /// the cache on every reading and decoded every row again.
    @Test func aFollowerOfALargeBatchDecodesEachRequestOnce() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let n = 1_100
        let small = try Journal(t.state)
        small.requestCacheLimit = 1_024
        let spec = BatchSpec(name: "big", jobs: (0..<n).map { BatchJob(id: "j\($0)", request: JobRequest(argv: ["echo", String($0)]), path: "j\($0)") })
        _ = try j.submitBatch(spec, results: t.base + "/results")
        _ = try small.batchJobs("big")
        _ = try small.batchJobs("big")
        #expect(small.decodedRequests == 2 * n, "a limit below the batch: every reading decodes")
        let follower = try Journal(t.state)
        follower.keepsEveryRequest = true
        for _ in 0..<3 { #expect(try follower.batchJobs("big").count == n) }
        #expect(follower.decodedRequests == n)
    }

    /// The coordinator keeps only unfinished jobs' requests: a job read finished leaves the
    /// cache, so its size follows the jobs in flight, not the jobs run.
    @Test func theCoordinatorsCacheDropsFinishedJobs() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let spec = BatchSpec(name: "b", jobs: (0..<10).map { BatchJob(id: "j\($0)", request: JobRequest(argv: ["true"]), path: "j\($0)") })
        let ids = try j.submitBatch(spec, results: t.base + "/results").ids
        let reader = try Journal(t.state)
        _ = try reader.batchJobs("b")
        #expect(reader.cachedRequests == 10)
        for id in ids.values.sorted().prefix(6) { try move(j, id, to: .succeeded) }
        _ = try reader.batchJobs("b")
        #expect(reader.cachedRequests == 4)
        _ = try reader.batchJobs("b")
        #expect(reader.decodedRequests == 10 + 6, "a finished job leaves the cache at the reading that finds it finished, and is decoded again after")
        // A job the reader itself ends leaves at once: the coordinator may never read it again
        // (a plain submitted job), and it held its request until the cache's limit cleared it.
        let rest = ids.values.sorted().suffix(4)
        for id in rest { #expect(try reader.finishJob(id, .failed, reason: "test", exitCode: 1, signal: nil, at: 1)) }
        #expect(reader.cachedRequests == 0)
    }

    @Test func ratesNeedThirtySecondsOfData() {
        func report(span: Double, succeeded: Int) -> BatchReport {
            let batch = BatchRecord(name: "m", failFast: false, results: "/r", file: nil, submittedAt: 0, finishedAt: span, generation: 1)
            let jobs = (0..<succeeded).map { i in
                BatchReport.Job(
                    record: JobRecord(id: i + 1, name: nil, request: JobRequest(argv: ["true"]), state: .succeeded, attempt: 1, host: "h1", failures: 0, losses: 0,
                                      exitCode: 0, signal: nil, reason: nil, submittedAt: 0, startedAt: 0, endedAt: span, cancelRequested: false, batch: "m", batchJob: String(i + 1), notBefore: nil),
                    attempts: [AttemptRecord(job: i + 1, attempt: 1, host: "h1", state: "exited", agentState: "exited", stale: false, startedAt: 0, endedAt: span,
                                             exitCode: 0, signal: nil, reason: nil, maxRSSBytes: nil, cpuSeconds: nil)])
            }
            return BatchReport(batch: batch, jobs: jobs, hosts: [BatchReport.Host(name: "h1", slots: 4, attempts: succeeded, succeeded: succeeded)], generatedAt: span)
        }
        let quick = report(span: 1, succeeded: 30)
        #expect(quick.jobsPerMinute(quick.hosts[0]) == nil, "30 jobs in one second are not 1,800 a minute")
        #expect(quick.json.contains("\"jobs_per_minute\":null"))
        #expect(quick.summary().contains("JOBS/MIN") && !quick.summary().contains("1800"))
        let long = report(span: 60, succeeded: 30)
        #expect(long.jobsPerMinute(long.hosts[0]) == 30)
    }
}
