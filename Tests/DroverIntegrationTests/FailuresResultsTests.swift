import DroverCoordinator
import DroverCore
import Foundation
import Testing

/// docs/failures.md: "A host dies while a batch job's results are being fetched" (with the
/// outputs that match nothing and the inputs changed after submission it also names), and
/// `drover run`/`logs --follow` across a re-run ("A host is powered off").
extension TestbedSuite {
    @Suite("Failures: results and re-runs")
    struct FailuresResultsTests {
        @Test func anOutputThatMatchesNothingFailsTheAttemptAndAnInputChangedAfterSubmissionIsRefused() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            try files.write("data.txt", "as submitted\n")
            let file = try files.write("io.json", """
                {"batch": "io", "jobs": [
                  {"id": "no-output", "shell": "echo made > other.txt", "outputs": ["missing-*.txt"], "retry": {"max_attempts": 2, "initial": 1, "jitter": 0}},
                  {"id": "gate", "argv": ["sleep", "3"]},
                  {"id": "changed-input", "after": ["gate"], "shell": "cat data.txt", "inputs": ["data.txt"]}
                ]}
                """)
            try await CoordinatorFixture.with { f in
                let s = try f.drover(["submit", file, "--results", files.results])
                #expect(s.status == 0, "\(s.stderr)")
                try files.write("data.txt", "changed after submission\n")
                let ids = try f.journal().batchJobs("io").map(\.id)
                _ = try f.waitFinal(ids, timeout: 90)
                let jobs = try f.batchJobs("io")
                let noOutput = try #require(jobs["no-output"])
                #expect(noOutput.state == .failed && noOutput.attempt == 2, "retried like a non-zero exit: \(noOutput.state) attempt \(noOutput.attempt)")
                #expect(noOutput.reason?.contains("declared output(s) missing-*.txt matched no file") == true, "\(noOutput.reason ?? "")")
                let changed = try #require(jobs["changed-input"])
                #expect(changed.state == .failed, "\(changed.state)")
                #expect(changed.reason?.contains("changed since the batch was submitted (its SHA-256 differs)") == true, "\(changed.reason ?? "")")
                #expect(try f.journal().attempt(changed.id, 1)?.agentState == "start_failed")
                #expect(files.result("io", "changed-input", "stdout") == nil, "the changed input never ran")
            }
        }

        @Test(.timeLimit(.minutes(4))) func aHostPoweredOffWhileItsResultsAreFetchedRunsTheJobAgainAndKeepsOnlyTheNewFiles() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let file = try files.write("big.json", """
                {"batch": "big", "jobs": [
                  {"id": "big", "shell": "head -c 400000000 /dev/urandom > big.bin; hostname > where.txt", "outputs": ["big.bin", "where.txt"]}
                ]}
                """)
            try await CoordinatorFixture.with(deadAfter: 4) { f in
                let s = try f.drover(["submit", file, "--results", files.results])
                #expect(s.status == 0, "\(s.stderr)")
                let id = try #require(try f.journal().batchJobs("big").first?.id)
                let j = try f.journal()
                var first = ""
                try f.waitFor("the attempt to end (and its results to be fetched)", timeout: 90) {
                    guard let a = try j.attempt(id, 1), a.agentState == "exited" else { return false }
                    first = a.host
                    return true
                }
                try await Testbed.withHostKilled(first) {
                    let job = try #require(try f.waitFinal([id], timeout: 120).first)
                    try #require(job.attempt == 2, "the fetch ended before \(first) was powered off (\(job.state), attempt \(job.attempt)): nothing was proven")
                    #expect(job.state == .succeeded, "\(job.reason ?? "")")
                    #expect(try f.events("job", job: id).contains { $0.message.contains("host \(first) down before the results of attempt 1 were fetched (host-loss retry 1 of 3)") },
                            "\(f.messages("job", job: id))")
                    let at = files.result("big", "big", "where.txt")?.trimmingCharacters(in: .whitespacesAndNewlines)
                    #expect(at == job.host && at != first, "the results are the new attempt's: \(at ?? "none")")
                    let size = try FileManager.default.attributesOfItem(atPath: files.results + "/big/big/big.bin")[.size] as? Int
                    #expect(size == 400_000_000)
                }
            }
        }

        @Test(.timeLimit(.minutes(3))) func runAndLogsFollowPrintTheNewAttemptOnceAfterAHostIsPoweredOff() async throws {
            try await CoordinatorFixture.with(deadAfter: 4) { f in
                let dir = try Testbed.tempDirectory()
                defer { try? FileManager.default.removeItem(atPath: dir) }
                let name = "rerun-\(UInt32.random(in: 0...UInt32.max))"
                var run = try f.spawnDrover(["run", "--name", name, "--", "sh", "-c", "echo begin-$(hostname); sleep 10; echo end-$(hostname)"], output: dir + "/run.out")
                var logs: pid_t = 0
                defer {
                    for p in [run, logs] where p > 0 { kill(p, SIGKILL); waitpid(p, nil, 0) }
                }
                let j = try f.journal()
                var first = ""
                try f.waitFor("the job to run", timeout: 30) {
                    guard let job = try j.resolve(name), job.state == .running, let h = job.host else { return false }
                    first = h
                    return true
                }
                let id = try #require(try j.resolve(name)?.id)
                try f.waitFor("run to print the first line", timeout: 20) { CoordinatorFixture.text(dir + "/run.out").contains("begin-\(first)") }
                logs = try f.spawnDrover(["logs", "--follow", String(id)], output: dir + "/logs.out")
                try await Testbed.withHostKilled(first) {
                    let runStatus = try f.exitStatus(of: run, timeout: 90)
                    run = 0
                    let logsStatus = try f.exitStatus(of: logs, timeout: 30)
                    logs = 0
                    #expect(runStatus == 0 && logsStatus == 0, "run \(runStatus), logs \(logsStatus)")
                }
                let job = try f.job(id)
                let second = job.host ?? "?"
                #expect(job.state == .succeeded && job.attempt == 2 && second != first)
                for out in ["run.out", "logs.out"] {
                    let text = CoordinatorFixture.text(dir + "/" + out)
                    #expect(text.components(separatedBy: "begin-\(second)\n").count == 2, "\(out): the new attempt's output once:\n\(text)")
                    #expect(text.components(separatedBy: "end-\(second)\n").count == 2, "\(out):\n\(text)")
                    #expect(!text.contains("end-\(first)"), "\(out):\n\(text)")
                }
                #expect(CoordinatorFixture.text(dir + "/run.out").contains("attempt 1 on \(first) was lost"))
            }
        }
    }
}
