import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    @Suite("Sagas: compensations in reverse dependency order")
    struct SagaTests {
        /// A step that leaves a marker in its host's home, and a compensation that removes it.
        static func step(_ id: String, host: String, after: String?, fails: Bool = false, compensate: String? = nil) -> String {
            let make = "mkdir -p ~/saga-markers && touch ~/saga-markers/\(id)" + (fails ? " && exit 3" : "")
            let undo = compensate ?? #"test \"$DROVER_COMPENSATING\" = 1 && rm ~/saga-markers/\#(id) && echo \"undo $DROVER_ORIGINAL_JOB $DROVER_ORIGINAL_ATTEMPT $DROVER_ORIGINAL_HOST $DROVER_ORIGINAL_RESULTS\""#
            return #"{"id": "\#(id)", "host": "\#(host)", \#(after.map { "\"after\": [\"\($0)\"], " } ?? "")"shell": "\#(make)", "compensate": {"shell": "\#(undo)"}}"#
        }

        static func marker(_ host: String, _ id: String) -> Bool {
            FileManager.default.fileExists(atPath: (Testbed.directory ?? "/nonexistent") + "/hosts/\(host)/home/saga-markers/\(id)")
        }

        static func clearMarkers() {
            for h in ["h1", "h2", "h3"] { try? FileManager.default.removeItem(atPath: (Testbed.directory ?? "/nonexistent") + "/hosts/\(h)/home/saga-markers") }
        }

        @Test func aFailureAtStep3Of4CompensatesStep2ThenStep1() async throws {
            let files = try BatchFiles()
            defer { files.remove(); Self.clearMarkers() }
            Self.clearMarkers()
            let file = try files.write("saga.json", """
                {"batch": "saga", "policy": "compensate-on-failure", "jobs": [
                  \(Self.step("s1", host: "h1", after: nil)),
                  \(Self.step("s2", host: "h2", after: "s1")),
                  \(Self.step("s3", host: "h3", after: "s2", fails: true)),
                  \(Self.step("s4", host: "h1", after: "s3"))
                ]}
                """)
            try await CoordinatorFixture.with { f in
                let r = try f.runBatch(file, files)
                #expect(r.status == 1, "step 3 fails, so the batch fails: \(r.stderr)")
                #expect(r.stdout.contains("compensation: compensated"), "drover run follows the saga to its end:\n\(r.stdout)")
                let j = try f.journal()
                try f.waitFor("the saga to end", timeout: 60) { try j.batch(named: "saga")?.saga != "compensating" }
                #expect(try j.batch(named: "saga")?.saga == "compensated")
                let jobs = try f.batchJobs("saga")
                #expect(jobs["s1"]?.compensation == .compensated && jobs["s2"]?.compensation == .compensated)
                #expect(jobs["s3"]?.state == .failed && jobs["s3"]?.compensation == nil, "a failed step has nothing to undo")
                #expect(jobs["s4"]?.state == .cancelled && jobs["s4"]?.compensation == nil, "compensate-on-failure stops the batch (fail-fast) first")
                #expect(!Self.marker("h1", "s1") && !Self.marker("h2", "s2"), "the compensations removed the markers of the steps that succeeded")
                #expect(Self.marker("h3", "s3"), "the failed step's marker is left alone")
                // Reverse dependency order, by the audit trail's timestamps: s2 compensated before s1's compensation was queued.
                let saga = try j.events().filter { $0.kind == "saga" }
                func time(_ job: Int?, _ state: String) -> Double? { saga.first { $0.job == job && $0.state == state }?.time }
                let s1 = jobs["s1"]!.id, s2 = jobs["s2"]!.id
                let order = [time(s2, "compensating"), time(s2, "compensated"), time(s1, "compensating"), time(s1, "compensated")]
                #expect(order.allSatisfy { $0 != nil } && order.map { $0 ?? 0 } == order.map { $0 ?? 0 }.sorted(), "\(saga.map(\.message))")
                // Each compensation is a job of its own, with the original's identity in its environment.
                let c1 = try #require(try j.job(jobs["s1"]!.compensationJob ?? -1))
                #expect(c1.compensates == s1 && c1.state == .succeeded && c1.host == "h1")
                let logged = try f.drover(["logs", String(c1.id)])
                let logs = logged.stdout + logged.stderr
                let cid = try j.coordinatorID()
                #expect(logs.contains("undo saga/s1 \(cid)-\(s1)/1 h1 \(files.results)/saga/s1"), "\(logs)")
                // The report, the joblog and `drover status` say it.
                let report = try String(contentsOfFile: files.results + "/saga/report.json", encoding: .utf8)
                #expect(report.contains(#""saga":{"state":"compensated""#) && report.contains(#""compensation":{"state":"compensated""#), "\(report)")
                try validateReport(files.results + "/saga/report.json")
                let joblog = files.dir + "/joblog"
                #expect(try f.droverState(["report", "saga", "--joblog", joblog]).status != 2)
                let lines = try String(contentsOfFile: joblog, encoding: .utf8).split(separator: "\n")
                #expect(lines.contains { $0.contains("compensate s1 (compensated)") } && lines.contains { $0.contains("compensate s2 (compensated)") }, "\(lines)")
                let status = try f.droverState(["status", "saga"]).stdout
                #expect(status.contains("saga of saga: compensated") && status.contains("[compensated by job \(c1.id)]"), "\(status)")
            }
        }

        @Test func aFailingCompensationStopsTheSagaAndResumeContinuesAfterAFix() async throws {
            let files = try BatchFiles()
            defer { files.remove(); Self.clearMarkers() }
            Self.clearMarkers()
            let fixed = (try Testbed.root()) + "/hosts/h2/home/saga-fixed"
            try? FileManager.default.removeItem(atPath: fixed)
            defer { try? FileManager.default.removeItem(atPath: fixed) }
            let guarded = #"test -e ~/saga-fixed || { echo not fixed >&2; exit 5; }; rm ~/saga-markers/b"#
            let file = try files.write("stop.json", """
                {"batch": "stop", "policy": "compensate-on-failure", "jobs": [
                  \(Self.step("a", host: "h1", after: nil)),
                  \(Self.step("b", host: "h2", after: "a", compensate: guarded)),
                  \(Self.step("c", host: "h3", after: "b", fails: true))
                ]}
                """)
            try await CoordinatorFixture.with { f in
                let r = try f.runBatch(file, files)
                #expect(r.status == 1 && r.stdout.contains("compensation: stopped") && r.stdout.contains("drover compensate stop --resume"), "\(r.stdout)")
                let j = try f.journal()
                try f.waitFor("the saga to stop", timeout: 60) { try j.batch(named: "stop")?.saga == "stopped" }
                let jobs = try f.batchJobs("stop")
                #expect(jobs["b"]?.compensation == .compensationFailed)
                #expect(jobs["a"]?.compensation == nil, "a's compensation waits for b's, which failed")
                #expect(Self.marker("h1", "a") && Self.marker("h2", "b"))
                let status = try f.droverState(["status", "stop"]).stdout
                #expect(status.contains("saga of stop: stopped") && status.contains("still to undo a, b") && status.contains("drover compensate stop --resume"), "\(status)")
                let report = try String(contentsOfFile: files.results + "/stop/report.json", encoding: .utf8)
                #expect(report.contains(#""left":["a","b"]"#), "\(report)")
                try validateReport(files.results + "/stop/report.json")
                let again = try f.drover(["compensate", "stop"])
                #expect(again.status == 1 && again.stderr.contains("--resume"), "\(again.stderr)")
                // The fix, then resume: b's compensation runs again, then a's.
                FileManager.default.createFile(atPath: fixed, contents: Data())
                let resumed = try f.drover(["compensate", "stop", "--resume", "--timeout", "60"])
                #expect(resumed.status == 0, "\(resumed.stdout) \(resumed.stderr)")
                #expect(resumed.stdout.contains("compensated"), "\(resumed.stdout)")
                let after = try f.batchJobs("stop")
                #expect(after["a"]?.compensation == .compensated && after["b"]?.compensation == .compensated)
                #expect(!Self.marker("h1", "a") && !Self.marker("h2", "b"))
            }
        }

        @Test func aCoordinatorKilledDuringASagaFinishesItAfterItsRestartWithoutRunningACompensationTwice() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let file = try files.write("k.json", """
                {"batch": "k", "policy": "compensate-on-failure", "jobs": [
                  {"id": "a", "argv": ["true"], "compensate": {"shell": "sleep 4"}},
                  {"id": "b", "after": ["a"], "argv": ["true"], "compensate": {"shell": "sleep 4"}},
                  {"id": "c", "after": ["b"], "argv": ["false"]}
                ]}
                """)
            try await CoordinatorFixture.with { f in
                #expect(try f.drover(["submit", file, "--results", files.results]).status == 0)
                let j = try f.journal()
                var running = 0
                try f.waitFor("b's compensation to run", timeout: 30) {
                    running = try f.batchJobs("k")["b"]?.compensationJob ?? 0
                    return try j.job(running)?.state == .running
                }
                f.kill9()
                try f.start()
                try f.waitFor("the saga to end after the restart", timeout: 60) { try j.batch(named: "k")?.saga != "compensating" }
                #expect(try j.batch(named: "k")?.saga == "compensated")
                #expect(try j.attempts(of: running).count == 1, "the running compensation was adopted, not run again")
                let queued = try j.events().filter { $0.kind == "saga" && $0.state == "compensating" }
                #expect(queued.count == 2, "one compensation job per job: \(queued.map(\.message))")
                #expect(try j.db.query("SELECT COUNT(*) AS n FROM jobs WHERE compensates IS NOT NULL").first?.int("n") == 2)
            }
        }

        @Test func aPowerOffDuringACompensationReRunsItElsewhere() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let file = try files.write("undo.json", """
                {"batch": "undo", "jobs": [
                  {"id": "deploy", "argv": ["true"], "compensate": {"shell": "sleep 6; echo undone on $(hostname)"}}
                ]}
                """)
            try await CoordinatorFixture.with(deadAfter: 4) { f in
                #expect(try f.runBatch(file, files).status == 0)
                // By hand, on a batch that succeeded: a rollback.
                let pid = try f.spawnDrover(["compensate", "undo", "--timeout", "90"])
                defer { kill(pid, SIGKILL); var s: Int32 = 0; waitpid(pid, &s, 0) }
                let j = try f.journal()
                var compensation = 0
                try f.waitFor("the compensation to run", timeout: 30) {
                    compensation = try f.batchJobs("undo")["deploy"]?.compensationJob ?? 0
                    return try j.job(compensation)?.state == .running
                }
                let victim = try #require(try j.job(compensation)?.host)
                try await Testbed.withHostKilled(victim) {
                    try f.waitFor("the saga to end", timeout: 90) { try j.batch(named: "undo")?.saga != "compensating" }
                }
                #expect(try j.batch(named: "undo")?.saga == "compensated")
                let attempts = try j.attempts(of: compensation)
                #expect(attempts.count >= 2 && attempts.first?.host == victim && attempts.first?.state == "lost", "\(attempts.map { "\($0.host) \($0.state)" })")
                #expect(attempts.last?.host != victim && attempts.last?.exitCode == 0)
                #expect(try f.batchJobs("undo")["deploy"]?.compensation == .compensated)
            }
        }
    }
}
