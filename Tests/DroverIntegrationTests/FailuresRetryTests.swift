import DroverCoordinator
import DroverCore
import Foundation
import Testing

/// docs/failures.md: "A host is powered off" (the `--lost-retries` budget) and "A job fails,
/// times out or exceeds its memory" (`drover run`'s exit codes, `--retries`, retry delays).
extension TestbedSuite {
    @Suite("Failures: retries and exit codes")
    struct FailuresRetryTests {
        @Test(.timeLimit(.minutes(4))) func aJobThatLosesItsHostMoreOftenThanLostRetriesAllowFailsWithTheDocumentedReason() async throws {
            try await CoordinatorFixture.with(deadAfter: 4) { f in
                let id = try f.submit(["sleep", "3001"], options: ["--host", "h3", "--lost-retries", "1"])
                let j = try f.journal()
                try f.waitFor("the job to run on h3", timeout: 30) { try j.job(id)?.state == .running }
                // First loss: within the budget, the (pinned) job is queued again.
                try await Testbed.withHostKilled("h3") {
                    try f.waitFor("the job queued again", timeout: 30) { try f.job(id).losses == 1 }
                    let job = try f.job(id)
                    #expect(job.state == .queued, "a pinned job waits for its host: \(job.state) \(job.reason ?? "")")
                    #expect(try f.events("job", job: id).contains { $0.message.contains("queued again: host h3 down (host-loss retry 1 of 1)") },
                            "\(f.messages("job", job: id))")
                }
                try f.waitFor("attempt 2 to run on h3", timeout: 60) {
                    let job = try f.job(id)
                    return job.attempt == 2 && job.state == .running
                }
                // Second loss: the budget is spent.
                try await Testbed.withHostKilled("h3") {
                    let job = try #require(try f.waitFinal([id], timeout: 30).first)
                    #expect(job.state == .failed)
                    #expect(job.reason == "host h3 down; lost its host 2 time(s) (--lost-retries 1)", "\(job.reason ?? "")")
                    #expect(try j.attempts(of: id).map(\.state) == ["lost", "lost"])
                }
            }
        }

        @Test func runExitsWith124AfterItsTimeout128PlusNForASignalAnd137AtItsMemoryLimit() async throws {
            try await CoordinatorFixture.with { f in
                let j = try f.journal()
                let timeout = try f.drover(["run", "--name", "to", "--timeout", "2", "--", "sleep", "60"])
                #expect(timeout.status == 124, "\(timeout.stderr)")
                let to = try #require(try j.resolve("to"))
                #expect(try j.attempt(to.id, 1)?.agentState == "timed_out")
                #expect(to.state == .failed && to.attempt == 1, "--retries 0 by default: \(to.reason ?? "")")

                let signal = try f.drover(["run", "--", "sh", "-c", "kill -USR1 $$"])
                #expect(signal.status == 128 + 10, "SIGUSR1 is 10: \(signal.stderr)")

                // A job that grows past its limit, 10 MB every 10 ms.
                let hog = ["perl", "-e", "my @a; while (1) { push @a, 'x' x 10_000_000; select(undef, undef, undef, 0.01) }"]
                let mem = try f.drover(["run", "--name", "hog", "--mem", "100M", "--"] + hog)
                #expect(mem.status == 137, "the memory limit's SIGKILL: \(mem.stderr)")
                let hogJob = try #require(try j.resolve("hog"))
                let attempt = try #require(try j.attempt(hogJob.id, 1))
                #expect(attempt.agentState == "resource_limit", "\(attempt.agentState ?? "") \(attempt.reason ?? "")")
                #expect(hogJob.state == .failed && hogJob.attempt == 1, "a memory limit is not retried: \(hogJob.reason ?? "")")
            }
        }

        @Test func runWithRetriesFollowsEachAttemptAndFailsWithTheLastExitCode() async throws {
            try await CoordinatorFixture.with { f in
                let r = try f.drover(["run", "--name", "thrice", "--retries", "2", "--", "sh", "-c", "echo try; exit 3"])
                #expect(r.status == 3, "\(r.stderr)")
                #expect(r.stdout == "try\ntry\ntry\n", "run prints the output of every attempt: \(r.stdout)")
                let job = try #require(try f.journal().resolve("thrice"))
                #expect(job.state == .failed && job.attempt == 3 && job.failures == 3)
                #expect(job.reason == "attempt 3 exited 3; failed 3 time(s) (3 attempt(s) allowed)", "\(job.reason ?? "")")
                let queued = try f.events("job", job: job.id).map(\.message).filter { $0.contains("queued again") }
                #expect(queued.count == 2 && queued.first?.contains("(failure retry 1 of 2)") == true, "\(queued)")
            }
        }

        @Test(.timeLimit(.minutes(3))) func aRetryDelaySurvivesACoordinatorRestart() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let delay = 30.0
            let mark = "/home/dtest/.drover-later-\(UInt32.random(in: 0...UInt32.max))"
            defer { _ = try? HostSide.sh("h1", "rm -f \(mark)") }
            let file = try files.write("later.json", """
                {"batch": "later", "jobs": [
                  {"id": "fails-once", "shell": "if [ -e \(mark) ]; then echo second; else touch \(mark); exit 5; fi",
                   "host": "h1", "retry": {"max_attempts": 2, "initial": \(Int(delay)), "jitter": 0}}
                ]}
                """)
            try await CoordinatorFixture.with { f in
                let s = try f.drover(["submit", file, "--results", files.results])
                #expect(s.status == 0, "\(s.stderr)")
                let id = try #require(try f.journal().batchJobs("later").first?.id)
                try f.waitFor("the first failure and its retry's time", timeout: 30) { try f.job(id).notBefore != nil }
                let notBefore = try #require(try f.job(id).notBefore)
                let failedAt = try #require(try f.journal().attempt(id, 1)?.endedAt)
                f.kill9()
                try f.startAndWaitForHosts()
                let restarted = Date().timeIntervalSince1970
                try #require(restarted < notBefore, "the coordinator was back \(restarted - notBefore) s after the retry was due: the test proves nothing")
                #expect(try f.job(id).notBefore == notBefore, "the retry's time is in the journal")
                try f.waitFor("the second attempt", timeout: delay + 60) { try f.journal().attempt(id, 2) != nil }
                let dispatched = try f.dispatchTimes(id)
                #expect(dispatched.count == 2)
                if dispatched.count == 2 {
                    #expect(dispatched[1] >= notBefore - 0.05, "dispatched \(notBefore - dispatched[1]) s before its retry was due")
                    #expect(dispatched[1] - failedAt >= delay - 0.05)
                }
            }
        }
    }
}
