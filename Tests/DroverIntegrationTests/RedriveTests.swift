import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    /// Dead letters and re-drive on the testbed (docs/failures.md#dead-letters-and-re-drive):
    /// real jobs that fail on their first attempt (`DROVER_ATTEMPT` is 1), then succeed when
    /// `drover retry` runs them again.
    @Suite("Re-drive")
    struct RedriveTests {
        /// Fails on attempt 1 with a line on stderr, succeeds from attempt 2 on.
        static let failsFirst = #"[ "$DROVER_ATTEMPT" -ge 2 ] || { echo "attempt $DROVER_ATTEMPT: the input is missing" >&2; exit 3; }; echo "ok on attempt $DROVER_ATTEMPT""#

        @Test func aFailedJobIsListedWithItsStderrAndRetriedWithItsHistoryKept() async throws {
            try await CoordinatorFixture.with { f in
                let id = try f.submit(["sh", "-c", Self.failsFirst])
                let failed = try f.waitFinal([id], timeout: 60)[0]
                #expect(failed.state == .failed && failed.exitCode == 3)
                let ps = try f.droverState(["ps", "--failed"])
                #expect(ps.stdout.contains("\(id)") && ps.stdout.contains("attempt 1: the input is missing") && ps.stdout.contains("drover retry"), "\(ps.stdout)")
                let json = try f.droverState(["ps", "--failed", "--json"]).stdout
                #expect(json.contains("\"stderrHead\"") && json.contains("the input is missing"), "\(json)")

                let r = try f.drover(["retry", String(id)])
                #expect(r.status == 0 && r.stdout.contains("\(id)\tretried"), "\(r.stdout) \(r.stderr)")
                let job = try f.waitFinal([id], timeout: 60)[0]
                #expect(job.state == .succeeded && job.attempt == 2, "\(job.reason ?? "")")
                let attempts = try f.journal().attempts(of: id)
                #expect(attempts.map(\.attempt) == [1, 2] && attempts[0].exitCode == 3 && attempts[1].exitCode == 0)
                #expect(try f.drover(["logs", String(id)]).stdout == "ok on attempt 2\n")
                let audit = try f.journal().events(job: id)
                #expect(audit.contains { $0.kind == "retry" && $0.message.contains("re-driven by") })
                #expect(try f.droverState(["ps", "--failed"]).stdout.contains("no failed jobs"))
                // A succeeded job is not re-driven (exit 2, says why).
                let again = try f.drover(["retry", String(id)])
                #expect(again.status == 2 && again.stdout.contains("not retried: it is succeeded"), "\(again.stdout)")
            }
        }

        @Test func retryingABatchReleasesTheDependentsThatWereSkipped() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            try await CoordinatorFixture.with { f in
                let batch = try files.write("chain.json", """
                    {"batch": "chain", "jobs": [
                      {"id": "a", "shell": \(JSONText.quote(Self.failsFirst))},
                      {"id": "b", "shell": "echo b", "after": ["a"]},
                      {"id": "c", "shell": "echo c", "after": ["b"]},
                      {"id": "d", "shell": "echo d"}]}
                    """)
                let run = try f.runBatch(batch, files)
                #expect(run.status != 0, "\(run.stdout) \(run.stderr)")
                var jobs = try f.batchJobs("chain")
                #expect(jobs["a"]?.state == .failed && jobs["b"]?.state == .skipped && jobs["c"]?.state == .skipped && jobs["d"]?.state == .succeeded)

                let r = try f.drover(["retry", "chain"])
                #expect(r.status == 0 && r.stdout.contains("chain/a\tretried; waiting again: chain/b, chain/c"), "\(r.stdout) \(r.stderr)")
                let ids = jobs.values.map(\.id)
                _ = try f.waitFinal(ids, timeout: 90)
                jobs = try f.batchJobs("chain")
                #expect(jobs.values.allSatisfy { $0.state == .succeeded }, "\(jobs.mapValues(\.state))")
                #expect(jobs["a"]?.attempt == 2 && jobs["d"]?.attempt == 1)
                #expect(files.result("chain", "c", "stdout") == "c\n")
                // The batch is over again, with its report rewritten.
                try f.waitFor("the batch to finish again", timeout: 30) { try f.journal().batch(named: "chain")?.finishedAt != nil }
            }
        }

        @Test func aRetriedCheckpointedJobStartsFromItsNewestSnapshot() async throws {
            try await CoordinatorFixture.with { f in
                // Saves its progress, then fails; the retry finds the progress restored.
                let script = """
                    if [ "$DROVER_CHECKPOINT" = restored ]; then echo "resumed from $(cat progress.json) of attempt $DROVER_CHECKPOINT_ATTEMPT"; exit 0; fi
                    echo 17 > progress.tmp; mv progress.tmp progress.json; echo "saved, then failing" >&2; exit 1
                    """
                let id = try f.submit(["sh", "-c", script], options: ["--checkpoint", "progress.json"])
                let failed = try f.waitFinal([id], timeout: 60)[0]
                #expect(failed.state == .failed)
                let j = try f.journal()
                try f.waitFor("the end snapshot of job \(id) stored", timeout: 30) { try j.checkpoint(of: id) != nil }
                #expect(try f.drover(["retry", String(id)]).status == 0)
                let job = try f.waitFinal([id], timeout: 60)[0]
                #expect(job.state == .succeeded && job.attempt == 2, "\(job.reason ?? "")")
                #expect(try f.drover(["logs", String(id)]).stdout == "resumed from 17 of attempt 1\n")
                #expect(try j.events(job: id).contains { $0.kind == "checkpoint" && $0.state == "restored" && $0.attempt == 2 })
            }
        }
    }
}
