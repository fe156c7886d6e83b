import DroverCore
import DroverInventory
import Foundation
import Testing
@testable import DroverCoordinator

@Suite("Compensations, notify targets and approval SLAs in batch files")
struct SagaSpecTests {
    func parse(_ text: String) throws(BatchFileError) -> BatchSpec {
        try BatchReader.parse(Array(text.utf8), file: "b.json", baseDirectory: "/tmp")
    }

    func problems(_ text: String) -> [String] {
        do {
            _ = try parse(text)
            return []
        } catch {
            return error.issues.map(\.description)
        }
    }

    @Test func compensationsInheritTheJobsEnvironmentAndPlacement() throws {
        let spec = try parse("""
            {"policy": "compensate-on-failure", "notify": {"url": "http://localhost:9/x", "events": ["batch_finished"]},
             "jobs": [{"id": "a", "argv": ["deploy"], "host": "h1", "env": {"A": "1"},
                       "compensate": {"argv": ["undeploy"], "env": {"B": "2"}, "timeout": "1m", "retries": 2}}]}
            """)
        #expect(spec.compensateOnFailure && spec.failFast, "compensate-on-failure stops the batch at the first failure")
        #expect(spec.notify == [NotifyTarget(url: "http://localhost:9/x", events: [.batchFinished])])
        let c = try #require(spec.jobs[0].request.compensate?.request)
        #expect(c.argv == ["undeploy"] && c.env == ["A": "1", "B": "2"] && c.host == "h1" && c.timeout == 60 && c.retries == 2)
    }

    @Test func compensationAndNotifyMistakesAreReportedWithTheirPaths() {
        let p = problems("""
            {"policy": "undo", "notify": [{"url": "https://x"}, {"command": ["hook"], "events": ["job_done"]}, {}],
             "defaults": {"compensate": {"argv": ["x"]}},
             "jobs": [{"id": "a", "argv": ["true"], "compensate": {"after": ["b"]}},
                      {"id": "g", "approval": true, "compensate": {"argv": ["x"]}, "on_timeout": "later"},
                      {"id": "b", "argv": ["true"], "escalate_after": "1m"}]}
            """).joined(separator: "\n")
        for expected in ["policy: must be \"keep-going\"", "notify[0].url: must be an http:// URL", "notify[1].events[0]: unknown event",
                         "notify[2]: needs `command`", "defaults.compensate: `compensate` cannot have a default",
                         "jobs[0].compensate.after: a compensation cannot have `after`", "jobs[0].compensate: needs `argv`",
                         "jobs[1].compensate: an approval gate runs nothing", "jobs[1].on_timeout: must be \"wait\"",
                         "jobs[2].escalate_after: `escalate_after` is for approval gates"] {
            #expect(p.contains(expected), "missing \(expected) in:\n\(p)")
        }
    }

    @Test func httpURLsAreParsedAndOthersRefused() {
        #expect(HTTPURL("http://127.0.0.1:8080/hook?x=1") == .some(HTTPURL("http://127.0.0.1:8080/hook?x=1")!))
        let u = HTTPURL("http://example.org")
        #expect(u?.host == "example.org" && u?.port == 80 && u?.target == "/")
        let v6 = HTTPURL("http://[::1]:81/a")
        #expect(v6?.host == "::1" && v6?.port == 81 && v6?.target == "/a")
        for bad in ["https://x/", "http://", "http://user@x/", "http://x:0/", "http://x/a b", "ftp://x"] { #expect(HTTPURL(bad) == nil, "\(bad)") }
    }

    @Test func aJobsCompensationWaitsForEveryJobDownstreamOfIt() {
        func job(_ id: String, after: [String]) -> JobRecord {
            var r = JobRequest(argv: ["true"])
            r.after = after.map { Dependency(job: $0) }
            return JobRecord(id: 0, name: nil, request: r, state: .succeeded, attempt: 1, host: nil, failures: 0, losses: 0, exitCode: 0,
                             signal: nil, reason: nil, submittedAt: 0, startedAt: nil, endedAt: nil, cancelRequested: false, batch: "b", batchJob: id)
        }
        let jobs = [job("a", after: []), job("b", after: ["a"]), job("c", after: ["b"]), job("d", after: ["a"]), job("e", after: [])]
        let dependents = Coordinator.dependents(of: jobs)
        #expect(Coordinator.downstream("a", dependents) == ["b", "c", "d"])
        #expect(Coordinator.downstream("b", dependents) == ["c"])
        #expect(Coordinator.downstream("e", dependents).isEmpty)
    }
}
