import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    /// GPUs and host facts on the testbed (docs/inventory.md#gpus, #facts). The hosts really
    /// differ: h1 and h2 run Debian 12 (Python 3.11.2, PARI/GP 2.15.2), h3 Debian 11 (Python
    /// 3.9.2, PARI/GP 2.13.1). No GPU is needed: a configured count tests the assignment and
    /// the environment.
    @Suite("Host facts and GPUs")
    struct HostFactsTests {
        /// The testbed's inventory with `facts` for every host and `gpus` on h1, in a temporary file.
        static func inventory(gpusOnH1: Int = 2) throws -> String {
            let data = try Data(contentsOf: URL(fileURLWithPath: (try Testbed.root()) + "/hosts.json"))
            var root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            var defaults = root["defaults"] as? [String: Any] ?? [:]
            defaults["facts"] = ["python": "python3 -V", "gp": "gp --version-short", "broken": "echo nope >&2; exit 7"]
            root["defaults"] = defaults
            var hosts = try #require(root["hosts"] as? [[String: Any]])
            for i in hosts.indices where hosts[i]["name"] as? String == "h1" { hosts[i]["gpus"] = gpusOnH1 }
            root["hosts"] = hosts
            let path = try Testbed.tempDirectory() + "/hosts.json"
            try JSONSerialization.data(withJSONObject: root).write(to: URL(fileURLWithPath: path))
            return path
        }

        /// GPUs the agent sees held (here by another coordinator's jobs on the same agent)
        /// make it refuse a start: that attempt ends `start_failed` at once, with the agent's
        /// reason, instead of staying `dispatched` until the link reconnects (docs/failures.md).
        @Test func aStartTheAgentRefusesEndsItsAttemptAtOnce() async throws {
            let inventory = try Self.inventory()
            try await CoordinatorFixture.with(inventory: inventory) { other in
                let release = "/tmp/drover-gpu-release-\(UUID().uuidString.prefix(8))"
                let holders = try (0..<2).map { _ in try other.submit(["sh", "-c", "while [ ! -f \(release) ]; do sleep 0.1; done"], options: ["--gpus", "1"]) }
                let oj = try other.journal()
                try other.waitFor("both of h1's GPUs held by the other coordinator", timeout: 30) { try oj.jobs(holders).filter { $0.state == .running }.count == 2 }
                try await CoordinatorFixture.with(inventory: inventory) { f in
                    let id = try f.submit(["true"], options: ["--gpus", "1"])
                    let done = try #require(try f.waitFinal([id], timeout: 30).first)
                    #expect(done.state == .failed, "\(done.state) \(done.reason ?? "")")
                    #expect(done.reason?.contains("refused by the agent on h1") == true && done.reason?.contains("GPU") == true, "\(done.reason ?? "")")
                    let attempt = try #require(try f.journal().attempt(id, 1))
                    #expect(attempt.agentState == "start_failed")
                }
                // The inner fixture's tear-down resets every agent, the holders with them.
                try Testbed.script("exec", "h1", "rm", "-f", release)
            }
        }

        static func waitForFacts(_ f: CoordinatorFixture) throws -> [String: HostFactsRecord] {
            let j = try f.journal()
            var facts: [String: HostFactsRecord] = [:]
            try f.waitFor("the facts of h1, h2 and h3", timeout: 30) {
                facts = try j.hostFacts()
                return ["h1", "h2", "h3"].allSatisfy { facts[$0]?.report.values["python"] != nil }
            }
            return facts
        }

        @Test func theAgentsReportRealDifferencesAndJobsRequireThem() async throws {
            try await CoordinatorFixture.with(inventory: try Self.inventory()) { f in
                let facts = try Self.waitForFacts(f)
                let h1 = try #require(facts["h1"]?.report), h3 = try #require(facts["h3"]?.report)
                #expect(h1.values["python"] == "Python 3.11.2" && h3.values["python"] == "Python 3.9.2")
                #expect(h1.values["gp"] == "2.15.2" && h3.values["gp"] == "2.13.1")
                #expect(h1.os?.contains("bookworm") == true && h3.os?.contains("bullseye") == true && h1.kernel != nil)
                #expect(h1.errors["broken"]?.hasPrefix("exit 7: nope") == true, "\(h1.errors)")

                // Placement: only the hosts whose Python is new enough.
                let ids = try (0..<6).map { _ in try f.submit(["python3", "-c", "import sys; print(sys.version_info[:2])"], options: ["--require", "python>=3.11"]) }
                let done = try f.waitFinal(ids, timeout: 60)
                #expect(done.allSatisfy { $0.state == .succeeded && $0.host != "h3" }, "\(done.map { ($0.host ?? "-", $0.state) })")
                let old = try f.submit(["gp", "-q"], options: ["--require", "gp<2.14"])
                #expect(try f.waitFinal([old], timeout: 60)[0].host == "h3")

                // No host fits: the job waits, and says why for each host.
                let none = try f.submit(["true"], options: ["--require", "gp>=2.20"])
                let j = try f.journal()
                try f.waitFor("a note on job \(none)", timeout: 30) { try j.job(none)?.reason?.hasPrefix("waits: no host fits") == true }
                let note = try j.job(none)?.reason ?? ""
                #expect(try j.job(none)?.state == .queued && note.contains("h1: gp is 2.15.2, needs >=2.20") && note.contains("h3: gp is 2.13.1, needs >=2.20"), "\(note)")
                _ = try f.drover(["cancel", String(none)])

                // --dry-run says which hosts fit and why the others do not.
                let dry = try f.drover(["submit", "--dry-run", "--require", "python>=3.11", "--", "true"])
                #expect(dry.status == 0 && dry.stdout.contains("h1  fits") && dry.stdout.contains("h3  no: python is 3.9.2, needs >=3.11"), "\(dry.stdout) \(dry.stderr)")

                // `drover hosts --facts` collects them on request and shows them; --json too.
                let shown = try f.drover(["hosts", "--facts"]).stdout
                #expect(shown.contains("PYTHON") && shown.contains("Python 3.9.2") && shown.contains("(failed: exit 7"), "\(shown)")
                let json = try f.drover(["hosts", "--json"]).stdout
                #expect(json.contains("\"facts\"") && json.contains("2.13.1"), "\(json.prefix(400))")
            }
        }

        @Test func aBatchSpreadOverDifferentVersionsGetsAWarning() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            try await CoordinatorFixture.with(inventory: try Self.inventory()) { f in
                _ = try Self.waitForFacts(f)
                let spread = try files.write("spread.json", """
                    {"batch": "spread", "defaults": {"require": {"python": "*"}}, "jobs": [{"id": "a", "argv": ["python3", "-V"]}, {"id": "b", "argv": ["python3", "-V"]}]}
                    """)
                let r = try f.drover(["submit", spread, "--results", files.results])
                #expect(r.status == 0 && r.stderr.contains("warning: batch spread may run on hosts with different versions") && r.stderr.contains("3.9.2 on h3"), "\(r.stderr)")
                let pinned = try files.write("pinned.json", """
                    {"batch": "pinned", "defaults": {"require": {"python": ">=3.11"}}, "jobs": [{"id": "a", "argv": ["python3", "-V"]}]}
                    """)
                let p = try f.drover(["submit", pinned, "--results", files.results])
                #expect(p.status == 0 && !p.stderr.contains("warning"), "\(p.stderr)")
                _ = try f.waitFinal(try f.journal().batchJobs("spread").map(\.id) + f.journal().batchJobs("pinned").map(\.id), timeout: 60)
            }
        }

        @Test func gpuJobsGetDisjointDevicesAndAThirdWaits() async throws {
            try await CoordinatorFixture.with(inventory: try Self.inventory()) { f in
                let release = "/tmp/drover-gpu-release-\(UUID().uuidString.prefix(8))"
                let hold = "echo \"$CUDA_VISIBLE_DEVICES|$ROCR_VISIBLE_DEVICES|$HIP_VISIBLE_DEVICES\"; while [ ! -f \(release) ]; do sleep 0.1; done"
                let ids = try (0..<3).map { _ in try f.submit(["sh", "-c", hold], options: ["--gpus", "1"]) }
                let j = try f.journal()
                try f.waitFor("two GPU jobs running on h1", timeout: 30) { try j.jobs(ids).filter { $0.state == .running && $0.host == "h1" }.count == 2 }
                let waiting = try #require(try j.jobs(ids).first { $0.state == .queued })
                // The 2-GPU host is full: the third waits, and no other host has GPUs.
                #expect(try j.jobs(ids).filter { $0.host != nil && $0.host != "h1" }.isEmpty)
                try Testbed.script("exec", "h1", "touch", release)
                let done = try f.waitFinal(ids, timeout: 60)
                #expect(done.allSatisfy { $0.state == .succeeded && $0.host == "h1" }, "\(done.map { ($0.host ?? "-", $0.state, $0.reason ?? "") })")
                var devices: [String] = []
                for id in ids.filter({ $0 != waiting.id }) {
                    let line = try f.drover(["logs", String(id)]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                    let parts = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                    #expect(parts.count == 3 && Set(parts).count == 1, "\(line)")
                    devices.append(parts[0])
                }
                #expect(Set(devices) == ["0", "1"], "\(devices)")

                // More GPUs than any host has: refused at once when the inventory says so for every fitting host…
                let refused = try f.drover(["submit", "--host", "h1", "--gpus", "3", "--", "true"])
                #expect(refused.status == 2 && refused.stderr.contains("--gpus 3: no matching host has that many GPUs"), "\(refused.stderr)")
                // …else the job waits with a note naming each host's GPUs.
                let big = try f.submit(["true"], options: ["--gpus", "3"])
                try f.waitFor("a note on job \(big)", timeout: 30) { try j.job(big)?.reason?.contains("h1: has 2 GPU(s), needs 3") == true }
                #expect(try j.job(big)?.reason?.contains("h3: has 0 GPU(s), needs 3") == true)
                _ = try f.drover(["cancel", String(big)])
            }
        }
    }
}
