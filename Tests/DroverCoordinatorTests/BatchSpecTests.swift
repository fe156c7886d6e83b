import DroverCore
import Foundation
import Testing
@testable import DroverCoordinator

@Suite("Batch files, graphs, plans and retry policies")
struct BatchSpecTests {
    func parse(_ text: String, base: String = "/tmp") throws(BatchFileError) -> BatchSpec {
        try BatchReader.parse(Array(text.utf8), file: "b.json", baseDirectory: base)
    }

    func problems(_ text: String) -> [String] {
        do {
            _ = try parse(text)
            return []
        } catch {
            return error.issues.map(\.description)
        }
    }

    @Test func defaultsApplyAndJobsOverrideThem() throws {
        let spec = try parse("""
            {"batch": "b", "policy": "fail-fast", "defaults": {"timeout": "2m", "env": {"A": "1"}, "retry": {"max_attempts": 5}},
             "jobs": [{"id": "x", "argv": ["true"], "env": {"B": "2"}},
                      {"id": "y", "shell": "true", "timeout": 5, "after": ["x:any", {"job": "x", "condition": "failed"}]}]}
            """)
        #expect(spec.name == "b" && spec.failFast)
        let x = spec.jobs[0].request, y = spec.jobs[1].request
        #expect(x.timeout == 120 && x.env == ["A": "1", "B": "2"] && x.retryPolicy.maxAttempts == 5)
        #expect(y.timeout == 5 && y.shell == "true")
        #expect(y.after == [Dependency(job: "x", condition: .any), Dependency(job: "x", condition: .failed)])
    }

    @Test func everyMistakeIsReportedWithItsPath() {
        let p = problems("""
            {"jobs": [
              {"id": "a", "argv": ["true"], "after": ["c"]},
              {"id": "b", "argv": ["true"], "after": ["a", "nope", "a:maybe"]},
              {"id": "c", "argv": ["true"], "after": ["b"]},
              {"id": "a", "argv": ["true"]},
              {"id": "../x", "shell": "true"},
              {"id": "e"},
              {"id": "f", "argv": ["true"], "shell": "true"},
              {"id": "g", "approval": true, "argv": ["true"]},
              {"id": "h", "argv": ["true"], "outputs": ["../etc/passwd", "/abs"], "retry": {"on": ["sometimes"], "jitter": 2}}
            ]}
            """)
        let text = p.joined(separator: "\n")
        #expect(text.contains("jobs[1].after[1]: unknown job id \"nope\""), "\(text)")
        #expect(text.contains("jobs[1].after[2]: unknown condition \"maybe\""), "\(text)")
        #expect(text.contains("jobs[3].id: duplicate job id \"a\" (first used by jobs[0])"), "\(text)")
        #expect(text.contains("dependency cycle: a (jobs[0]) → c (jobs[2]) → b (jobs[1]) → a"), "\(text)")
        #expect(text.contains("jobs[4].id: job id \"../x\" may use only"), "\(text)")
        #expect(text.contains("jobs[5]: needs `argv`"), "\(text)")
        #expect(text.contains("jobs[6].shell: give `argv` or `shell`, not both"), "\(text)")
        #expect(text.contains("jobs[7]: an approval gate runs nothing"), "\(text)")
        #expect(text.contains("jobs[8].outputs[0]: must be a relative path"), "\(text)")
        #expect(text.contains("jobs[8].outputs[1]: must be a relative path"), "\(text)")
        #expect(text.contains("jobs[8].retry.on[0]: must be an exit code or one of"), "\(text)")
        #expect(text.contains("jobs[8].retry.jitter: must be between 0 and 1"), "\(text)")
        #expect(p.allSatisfy { $0.hasPrefix("b.json") })
    }

    @Test func syntaxErrorsAndMissingInputsNameTheFileAndPlace() throws {
        #expect(problems("{\"jobs\": [}").first?.hasPrefix("b.json:1:") == true)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("batchspec-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir + "/data/sub", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "1".write(toFile: dir + "/data/a.txt", atomically: true, encoding: .utf8)
        try "2".write(toFile: dir + "/data/sub/b.txt", atomically: true, encoding: .utf8)
        let spec = try parse("""
            {"jobs": [{"id": "x", "argv": ["true"], "inputs": ["data", {"path": "data/a.txt", "as": "renamed.txt"}]}]}
            """, base: dir)
        let inputs = spec.jobs[0].request.inputs!
        #expect(inputs.map(\.path) == ["data/a.txt", "data/sub/b.txt", "renamed.txt"])
        #expect(inputs[0].sha256 == hexString(SHA256.hash(Array("1".utf8))))
        do {
            _ = try BatchReader.parse(Array(#"{"jobs": [{"id": "x", "argv": ["true"], "inputs": ["missing.bin"]}]}"#.utf8), file: "b.json", baseDirectory: dir)
            Issue.record("a missing input was accepted")
        } catch {
            #expect(error.description.contains("jobs[0].inputs[0]: no such file or folder: \(dir)/missing.bin"), "\(error)")
        }
    }

    @Test func orderPutsDependenciesFirstAndKeepsFileOrderOtherwise() throws {
        let spec = try parse("""
            {"jobs": [{"id": "d", "argv": ["true"], "after": ["b", "c"]}, {"id": "c", "argv": ["true"], "after": ["a"]},
                      {"id": "b", "argv": ["true"]}, {"id": "a", "argv": ["true"]}, {"id": "e", "argv": ["true"]}]}
            """)
        #expect(try BatchGraph.order(spec.jobs).map(\.id) == ["b", "a", "c", "d", "e"])
    }

    func spec(_ jobs: [(String, [String], String)]) -> BatchSpec {
        BatchSpec(name: "p", jobs: jobs.map { id, after, cmd in
            var r = JobRequest(shell: cmd)
            r.after = after.map { Dependency(job: $0) }
            return BatchJob(id: id, request: r, path: id)
        })
    }

    @Test func resumeKeepsWhatSucceededUnchangedAndRerunsDependentsOfWhatRuns() throws {
        let s = spec([("a", [], "true"), ("b", ["a"], "exit 1"), ("c", ["b"], "true"), ("d", [], "echo d")])
        let hash = { (id: String) in BatchPlan.specHash(s.jobs.first { $0.id == id }!.request) }
        let existing: [String: BatchPlan.Existing] = [
            "a": .init(row: 1, state: .succeeded, specHash: hash("a")),
            "b": .init(row: 2, state: .failed, specHash: hash("b")),
            "c": .init(row: 3, state: .succeeded, specHash: hash("c")),
            "d": .init(row: 4, state: .succeeded, specHash: "something else"),
            "gone": .init(row: 5, state: .succeeded, specHash: nil),
        ]
        let plan = try BatchPlan.make(s, existing: existing, restart: false, limit: nil)
        #expect(plan.kept == ["a"])
        #expect(plan.run.map(\.job.id) == ["b", "c", "d"])
        #expect(plan.run.map(\.why) == ["was failed", "depends on b, which runs again", "spec changed"])
        #expect(plan.retire == [2, 3, 4, 5] && plan.cancel.isEmpty)
    }

    @Test func anUnfinishedBatchIsRefusedUnlessRestarted() throws {
        let s = spec([("a", [], "true"), ("b", ["a"], "true")])
        let existing: [String: BatchPlan.Existing] = ["a": .init(row: 1, state: .running, specHash: nil)]
        #expect(throws: BatchPlanError.self) { try BatchPlan.make(s, existing: existing, restart: false, limit: nil) }
        let plan = try BatchPlan.make(s, existing: existing, restart: true, limit: nil)
        #expect(plan.cancel == [1] && plan.run.count == 2)
        let limited = try BatchPlan.make(s, existing: [:], restart: false, limit: 1)
        #expect(limited.run.map(\.job.id) == ["a"] && limited.limitedOut == ["b"])
    }

    @Test func retryDelaysGrowAndAreCapped() {
        let p = RetryPolicy(maxAttempts: 10, initial: 1, multiplier: 2, max: 5, jitter: 0)
        #expect((1...5).map { p.baseDelay(retry: $0) } == [1, 2, 4, 5, 5])
        let defaults = RetryPolicy()
        #expect(defaults.maxAttempts == 3 && defaults.initial == 1 && defaults.multiplier == 2 && defaults.max == 100 && defaults.jitter == 0.1)
        let jittered = RetryPolicy(initial: 10, jitter: 0.1)
        #expect(jittered.delay(retry: 1, random: 0) == 9 && jittered.delay(retry: 1, random: 1) == 11)
        #expect(defaults.retries(.exit(3)) && defaults.retries(.timeout) && !defaults.retries(.resourceLimit) && !defaults.retries(.exit(0)))
        let codes = RetryPolicy(on: [.exitCode(75)])
        #expect(codes.retries(.exit(75)) && !codes.retries(.exit(1)))
    }
}
