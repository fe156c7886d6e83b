import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    @Suite("Notifications and approval escalation")
    struct NotifyTests {
        /// The testbed inventory with a top-level `notify`.
        static func inventory(_ dir: String, notify: String) throws -> String {
            let base = try String(contentsOfFile: (try Testbed.root()) + "/hosts.json", encoding: .utf8)
            let text = base.replacingOccurrences(of: "\"hosts\":", with: "\"notify\": \(notify),\n  \"hosts\":")
            let path = dir + "/hosts.json"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        /// A hook that records each event it gets on stdin in a file of its own under `folder`
        /// (deliveries run at the same time); `$0` is the folder, an argument, never interpolated.
        static func recorder(_ folder: String) throws -> String {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            return #"["/bin/sh", "-c", "f=$(mktemp \"$0/e.XXXXXX\") && cat > \"$f\"", "\#(folder)"]"#
        }

        /// The JSON objects a recording hook wrote, in the order they were queued.
        static func recorded(_ folder: String) -> [[String: Any]] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            let events = names.compactMap { name -> [String: Any]? in
                guard let data = FileManager.default.contents(atPath: folder + "/" + name) else { return nil }
                return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            }
            return events.sorted { ($0["time"] as? Double ?? 0) < ($1["time"] as? Double ?? 0) }
        }

        @Test func hooksAndHTTPReceiversGetTheEventsAndFailingHooksBlockNothing() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let http = try HTTPReceiver(statuses: [500])
            defer { http.stop() }
            let hookLog = files.dir + "/hook"
            let recorder = try Self.recorder(hookLog)
            let inventory = try Self.inventory(files.dir, notify: """
                [{"command": \(recorder), "events": ["job_failed", "batch_finished"]},
                 {"command": ["/bin/sleep", "30"], "timeout": "1s", "attempts": 2, "events": ["batch_finished"]},
                 {"command": ["/bin/false"], "attempts": 2, "events": ["batch_finished"]}]
                """)
            let file = try files.write("n.json", """
                {"batch": "n", "notify": {"url": "\(http.url)", "events": ["batch_finished"]}, "jobs": [
                  {"id": "ok", "argv": ["true"]},
                  {"id": "bad", "shell": "echo oops >&2; exit 7"}
                ]}
                """)
            try await CoordinatorFixture.with(inventory: inventory) { f in
                let started = ContinuousClock.now
                #expect(try f.runBatch(file, files).status == 1)
                #expect(Testbed.elapsed(since: started) < 20, "a hook that hangs holds nothing up")
                let j = try f.journal()
                try f.waitFor("every delivery to end", timeout: 30) { try j.notifications().allSatisfy { $0.state != "pending" } && j.notifications().count == 5 }
                let hook = Self.recorded(hookLog)
                let failed = hook.first { $0["event"] as? String == "job_failed" }
                #expect(failed?["job"] as? String == "n/bad" && failed?["exit_code"] as? Int == 7 && failed?["batch"] as? String == "n", "\(hook)")
                let finished = hook.first { $0["event"] as? String == "batch_finished" }
                #expect(finished?["succeeded"] as? Bool == false && (finished?["totals"] as? [String: Any])?["failed"] as? Int == 1, "\(hook)")
                // The receiver answered 500 first: the POST was delivered again.
                #expect(http.received.count == 2 && http.received.allSatisfy { $0.contains(#""event":"batch_finished""#) }, "\(http.received)")
                let rows = try j.notifications()
                #expect(rows.first { $0.target.url != nil }.map { $0.state == "delivered" && $0.attempts == 2 } == true)
                #expect(rows.filter { $0.target.command?.first == "/bin/sleep" || $0.target.command?.first == "/bin/false" }.allSatisfy { $0.state == "failed" && $0.attempts == 2 })
                let audit = try j.events().filter { $0.kind == "notify" }.map(\.message)
                #expect(audit.contains { $0.contains("answered HTTP 500") && $0.contains("again in") }, "\(audit)")
                #expect(audit.contains { $0.contains("/bin/sleep 30") && $0.contains("given up") }, "\(audit)")
            }
        }

        @Test func aHostThatDiesIsNotifiedOnce() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let hookLog = files.dir + "/hook"
            let inventory = try Self.inventory(files.dir, notify: #"{"command": \#(try Self.recorder(hookLog)), "events": ["host_down"]}"#)
            try await CoordinatorFixture.with(deadAfter: 4, inventory: inventory) { f in
                let id = try f.submit(["sleep", "8"], options: ["--host", "h3", "--lost-retries", "0"])
                _ = try f.runningJob(on: "h3", among: [id])
                try await Testbed.withHostKilled("h3") {
                    let j = try f.journal()
                    // The hook writes its file before it exits, and the delivery is recorded after.
                    try f.waitFor("the host_down notification", timeout: 30) {
                        try !Self.recorded(hookLog).isEmpty && j.notifications().allSatisfy { $0.state != "pending" }
                    }
                    let events = Self.recorded(hookLog)
                    #expect(events.count == 1 && events.first?["event"] as? String == "host_down" && events.first?["host"] as? String == "h3", "\(events)")
                    #expect((events.first?["message"] as? String)?.contains("no heartbeat") == true)
                    let delivered = try j.events().filter { $0.kind == "notify" && $0.state == "delivered" }
                    #expect(delivered.count == 1 && delivered[0].message.contains("host_down delivered"), "\(delivered.map(\.message))")
                }
            }
        }

        @Test func aHostQuarantinedAsABlackHoleIsNotified() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let hookLog = files.dir + "/hook"
            var inventory = try Self.inventory(files.dir, notify: #"{"command": \#(try Self.recorder(hookLog)), "events": ["host_quarantined"]}"#)
            let text = try String(contentsOfFile: inventory, encoding: .utf8)
                .replacingOccurrences(of: #""defaults": {"#, with: #""defaults": { "quarantine": {"failures": 2, "within": "10m", "short": "1m", "cooldown": "10m"},"#)
            inventory = try files.write("hosts-q.json", text)
            // Every job fails on h3 only (at once), and succeeds when retried elsewhere.
            let jobs = (1...9).map { #"{"id": "j\#($0)", "shell": "[ \"$(hostname)\" != h3 ] || exit 9; sleep 1"}"# }.joined(separator: ",\n")
            let batch = try files.write("bh.json", #"{"batch": "bh", "defaults": {"retry": {"max_attempts": 4, "initial": 0}}, "jobs": [\#(jobs)]}"#)
            try await CoordinatorFixture.with(inventory: inventory) { f in
                #expect(try f.runBatch(batch, files).status == 0)
                try f.waitFor("the host_quarantined notification", timeout: 30) { !Self.recorded(hookLog).isEmpty }
                let events = Self.recorded(hookLog)
                #expect(events.count == 1 && events[0]["event"] as? String == "host_quarantined" && events[0]["host"] as? String == "h3", "\(events)")
                #expect((events[0]["message"] as? String)?.contains("h3 quarantined") == true, "\(events)")
            }
        }

        @Test func aHostQuarantinedByHandIsNotifiedOnce() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let hookLog = files.dir + "/hook"
            let inventory = try Self.inventory(files.dir, notify: #"{"command": \#(try Self.recorder(hookLog)), "events": ["host_quarantined"]}"#)
            try await CoordinatorFixture.with(inventory: inventory) { f in
                let r = try Testbed.run(Testbed.droverBinary, ["hosts", "quarantine", "h2", "--state", f.state, "--inventory", inventory])
                #expect(r.status == 0, "\(r.stderr)")
                try f.waitFor("the host_quarantined notification", timeout: 30) { !Self.recorded(hookLog).isEmpty }
                // Released and the journal changed again: still one notification.
                #expect(try Testbed.run(Testbed.droverBinary, ["hosts", "release", "h2", "--state", f.state, "--inventory", inventory]).status == 0)
                _ = try f.submit(["true"])
                let events = Self.recorded(hookLog)
                #expect(events.count == 1 && events[0]["host"] as? String == "h2", "\(events)")
                #expect((events[0]["message"] as? String)?.contains("quarantined by hand") == true, "\(events)")
            }
        }

        @Test func anApprovalGateEscalatesThenTimesOutAsConfigured() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let hookLog = files.dir + "/hook"
            let file = try files.write("gates.json", """
                {"batch": "gates", "notify": {"command": \(try Self.recorder(hookLog)),
                                               "events": ["approval_waiting", "approval_escalated"]},
                 "jobs": [
                  {"id": "auto", "approval": true, "escalate_after": "1s", "timeout": "3s", "on_timeout": "approve"},
                  {"id": "after-auto", "after": ["auto"], "argv": ["true"]},
                  {"id": "patient", "approval": true, "escalate_after": "1s", "timeout": "2s", "on_timeout": "wait"},
                  {"id": "strict", "approval": true, "timeout": "2s"}
                ]}
                """)
            try await CoordinatorFixture.with { f in
                #expect(try f.drover(["submit", file, "--results", files.results]).status == 0)
                let j = try f.journal()
                try f.waitFor("auto and strict to time out", timeout: 30) {
                    let jobs = try f.batchJobs("gates")
                    return jobs["after-auto"]?.state == .succeeded && jobs["strict"]?.state == .failed && jobs["patient"]?.escalation == "timed_out"
                }
                let jobs = try f.batchJobs("gates")
                #expect(jobs["auto"]?.state == .succeeded && jobs["auto"]?.reason?.contains("on_timeout approve") == true, "\(jobs["auto"]?.reason ?? "")")
                #expect(jobs["strict"]?.reason?.contains("not approved within") == true)
                #expect(jobs["patient"]?.state == .approval, "on_timeout wait keeps waiting")
                // The escalation came after escalate_after, the timeout after timeout (audit trail times).
                let approval = try j.events().filter { $0.kind == "approval" }
                let since = try #require(jobs["patient"]?.startedAt)
                let escalated = try #require(approval.first { $0.job == jobs["patient"]?.id && $0.state == "escalated" })
                let timedOut = try #require(approval.first { $0.job == jobs["patient"]?.id && $0.state == "timed_out" })
                #expect(escalated.time - since >= 1 && escalated.time - since < 3, "\(escalated.time - since)")
                #expect(timedOut.time - since >= 2 && timedOut.time > escalated.time)
                try f.waitFor("the notifications", timeout: 20) {
                    Self.recorded(hookLog).filter { $0["event"] as? String == "approval_escalated" }.count == 3
                }
                let events = Self.recorded(hookLog)
                #expect(events.filter { $0["event"] as? String == "approval_waiting" }.count == 3, "\(events)")
                #expect(events.contains { $0["event"] as? String == "approval_escalated" && $0["job"] as? String == "gates/patient" && $0["timed_out"] as? Bool == true })
                #expect(try f.drover(["approve", "gates/patient"]).status == 0)
                try f.waitFor("patient approved", timeout: 10) { try f.batchJobs("gates")["patient"]?.state == .succeeded }
            }
        }
    }
}
