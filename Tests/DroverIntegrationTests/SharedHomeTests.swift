import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    /// Hosts whose homes are one shared folder (an NFS lab), one machine under two inventory
    /// names, and two coordinators on the same hosts.
    @Suite("Shared homes and several coordinators")
    struct SharedHomeTests {
        /// The machine id of a testbed host, read inside it as the probe and the agent read it.
        static func machineID(_ host: String) throws -> String {
            let out = try Testbed.script("exec", host, "sh", "-c", HostProbe.machineIDCommand)
            let line = out.split(separator: "\n").first { $0.hasPrefix("machine_id=") } ?? ""
            return String(line.dropFirst("machine_id=".count))
        }

        /// Writes an inventory next to the testbed's: its hosts, changed by `edit`.
        static func inventory(_ edit: (inout [[String: Any]]) -> Void) throws -> (dir: String, path: String) {
            let base = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: (try Testbed.root()) + "/hosts.json"))) as? [String: Any]
            guard let base, var hosts = base["hosts"] as? [[String: Any]] else {
                throw TestbedError("the testbed's hosts.json has no \"hosts\" list")
            }
            edit(&hosts)
            var inventory = base
            inventory["hosts"] = hosts
            let dir = try Testbed.tempDirectory()
            let path = dir + "/hosts.json"
            try JSONSerialization.data(withJSONObject: inventory).write(to: URL(fileURLWithPath: path))
            return (dir, path)
        }

        @Test func hostsSharingAHomeEachRunTheirOwnJobsInTheirOwnStateDirectory() async throws {
            try await Testbed.withSharedHome(["h1", "h2"]) {
                // The homes really are one folder.
                try Testbed.script("exec", "h1", "sh", "-c", "echo from-h1 > /home/dtest/shared-marker")
                #expect(try Testbed.script("exec", "h2", "cat", "/home/dtest/shared-marker") == "from-h1\n")
                let (ids1, ids2) = (try Self.machineID("h1"), try Self.machineID("h2"))
                #expect(!ids1.isEmpty && !ids2.isEmpty)

                try await CoordinatorFixture.with { f in
                    let jobs = try ["h1", "h2", "h1", "h2", "h3", "h1", "h2"].map { host in
                        (host, try f.submit(["sh", "-c", "echo ran-on=$(hostname)"], options: ["--host", host]))
                    }
                    let done = try f.waitFinal(jobs.map(\.1), timeout: 60)
                    #expect(done.allSatisfy { $0.state == .succeeded }, "\(done.map { "\($0.id) \($0.state) \($0.reason ?? "")" })")
                    for (host, id) in jobs {
                        let logs = try f.drover(["logs", String(id)])
                        #expect(logs.stdout == "ran-on=\(host)\n", "job \(id) for \(host) ran on: \(logs.stdout)\(logs.stderr)")
                        #expect(try f.journal().job(id)?.host == host)
                    }
                    // One state directory per host in the shared home, each owned by its machine.
                    let shared = (try Testbed.root()) + "/hosts/h1/home/.drover"
                    for (host, id) in [("h1", ids1), ("h2", ids2)] {
                        let owner = try JSONParser.parse(try LocalFile.read(shared + "/" + host + "/owner.json"))
                        #expect(owner["machine_id"]?.stringValue == id, "\(host)'s state directory names its own machine")
                        #expect(owner["hostname"]?.stringValue == host)
                    }
                    let j = try f.journal()
                    #expect(try j.events().filter { $0.state == "same_machine" }.isEmpty, "sharing a home is not being the same machine")
                }
            }
        }

        @Test func aStateDirectorySharedByTwoMachinesIsRefusedByTheSecond() async throws {
            try await Testbed.withSharedHome(["h1", "h2"]) {
                // Both hosts told to use the same folder of the shared home.
                let (dir, path) = try Self.inventory { hosts in
                    hosts = hosts.filter { ["h1", "h2"].contains($0["name"] as? String) }.map { var h = $0; h["root"] = "~/.drover/same"; return h }
                }
                defer { try? FileManager.default.removeItem(atPath: dir) }
                let first = try Testbed.run(Testbed.droverBinary, ["deploy", "--inventory", path, "h1"])
                #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
                let second = try Testbed.run(Testbed.droverBinary, ["deploy", "--inventory", path, "h2"])
                #expect(second.status != 0)
                let text = second.stdout + second.stderr
                #expect(text.contains("refusing the state directory /home/dtest/.drover/same") && text.contains("belongs to the agent of another machine, h1"), "\(text)")
                let owner = try JSONParser.parse(try LocalFile.read((try Testbed.root()) + "/hosts/h1/home/.drover/same/owner.json"))
                #expect(owner["hostname"]?.stringValue == "h1", "h1's agent still owns it")
                // `drover hosts` does not take h1's heartbeat for h2's agent, and says why.
                let table = try Testbed.run(Testbed.droverBinary, ["hosts", "--inventory", path])
                #expect(table.stdout.contains("warning: h2: its agent's state directory is run by the agent of another machine, h1"), "\(table.stdout)")
                let reports = try JSONDecoder().decode([HostReport].self, from: Data(try Testbed.run(Testbed.droverBinary, ["hosts", "--inventory", path, "--json"]).stdout.utf8))
                #expect(reports.map(\.rootUsedBy) == [nil, "h1"])
                #expect(reports.map { $0.agentVersion != nil } == [true, false])
            }
        }

        @Test func twoInventoryHostsOnOneMachineAreReportedAndOnlyOneGetsJobs() async throws {
            let (dir, path) = try Self.inventory { hosts in
                var again = hosts[0]
                again["name"] = "h1-again"
                hosts.append(again)
            }
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let table = try Testbed.run(Testbed.droverBinary, ["hosts", "--inventory", path])
            #expect(table.status == 0, "\(table.stdout)\(table.stderr)")
            #expect(table.stdout.contains("warning: h1-again and h1 are the same machine"), "\(table.stdout)")
            let json = try JSONDecoder().decode([HostReport].self, from: Data(try Testbed.run(Testbed.droverBinary, ["hosts", "--inventory", path, "--json"]).stdout.utf8))
            #expect(json.first { $0.name == "h1-again" }?.sameMachineAs == "h1")
            #expect(json.filter { $0.sameMachineAs != nil }.count == 1)

            let f = try CoordinatorFixture(inventory: path)
            do {
                try f.start()
                let j = try f.journal()
                try f.waitFor("the coordinator to name both", timeout: 30) {
                    try j.events().contains { $0.state == "same_machine" && $0.host == "h1-again" && $0.message.contains("h1-again and h1 are the same machine") }
                }
                #expect(f.log.contains("warning: h1-again and h1 are the same machine"))
                try f.waitFor("every host up", timeout: 30) { try j.hosts().filter { $0.state == "up" }.count == 4 }
                let ids = try (0..<12).map { _ in try f.submit(["sleep", "0.3"]) }
                let done = try f.waitFinal(ids, timeout: 60)
                #expect(done.allSatisfy { $0.state == .succeeded })
                #expect(!done.contains { $0.host == "h1-again" }, "\(done.map { $0.host ?? "-" })")
                #expect(Set(done.compactMap(\.host)).isSubset(of: ["h1", "h2", "h3"]))
            } catch {
                await f.tearDown()
                throw error
            }
            await f.tearDown()
        }

        @Test func aDeadCoordinatorsLeaseOrphansOnlyItsOwnAttempts() async throws {
            try await CoordinatorFixture.with { keeper in
                let other = try CoordinatorFixture(deadAfter: 2, leaseTTL: 3)
                defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: other.state).deletingLastPathComponent().path) }
                do {
                    try other.startAndWaitForHosts()
                    let kept = try keeper.submit(["sh", "-c", "sleep 8; echo kept"], options: ["--host", "h2"])
                    let doomed = try other.submit(["sleep", "600"], options: ["--host", "h2"])
                    let (kj, oj) = (try keeper.journal(), try other.journal())
                    try keeper.waitFor("both jobs to run", timeout: 30) {
                        try kj.job(kept)?.state == .running && oj.job(doomed)?.state == .running
                    }
                    let otherID = try oj.coordinatorID()
                    other.kill9()
                    // Its lease (3 s) runs out on h2's agent: only its attempt is orphaned.
                    let transitions = (try Testbed.root()) + "/hosts/h2/home/.drover/h2/attempts/\(otherID)-\(doomed)/1/transitions"
                    try keeper.waitFor("the dead coordinator's attempt orphaned", timeout: 30) {
                        ((try? String(contentsOfFile: transitions, encoding: .utf8)) ?? "").contains("\"orphaned\"")
                    }
                    let finished = try keeper.waitFinal([kept], timeout: 60)
                    #expect(finished.first?.state == .succeeded, "\(finished.first?.reason ?? "")")
                    #expect(try kj.attempts(of: kept).count == 1)
                    #expect(try kj.events().filter { $0.kind == "lease_expired" }.isEmpty, "another coordinator's lease is not ours")
                } catch {
                    other.kill9()
                    throw error
                }
            }
        }

        @Test func downKillJobsOfOneCoordinatorLeavesTheOthersJobAndAgents() async throws {
            try await CoordinatorFixture.with { keeper in
                let other = try CoordinatorFixture()
                defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: other.state).deletingLastPathComponent().path) }
                do {
                    try other.startAndWaitForHosts()
                    let kept = try keeper.submit(["sh", "-c", "sleep 6; echo kept"], options: ["--host", "h1"])
                    let doomed = try other.submit(["sleep", "600"], options: ["--host", "h1"])
                    let (kj, oj) = (try keeper.journal(), try other.journal())
                    try keeper.waitFor("both jobs to run", timeout: 30) {
                        try kj.job(kept)?.state == .running && oj.job(doomed)?.state == .running
                    }
                    // Both coordinators' leases are live on every host: `drover hosts` says so.
                    try keeper.waitFor("hosts to show 2 coordinators", timeout: 20) {
                        let r = try keeper.drover(["hosts", "--json"])
                        let reports = try JSONDecoder().decode([HostReport].self, from: Data(r.stdout.utf8))
                        return reports.count == 3 && reports.allSatisfy { $0.coordinators == 2 }
                    }
                    let down = try other.drover(["down", "--kill-jobs"])
                    #expect(down.status == 0, "\(down.stdout)\(down.stderr)")
                    for h in ["h1", "h2", "h3"] {
                        #expect(down.stdout.contains("\(h): agent kept running: it serves 1 other coordinator"), "\(down.stdout)")
                    }
                    #expect(try oj.job(doomed)?.state == .cancelled)
                    #expect(other.log.contains("stopped") || true)
                    other.pid = 0  // `drover down` stopped it
                    let finished = try keeper.waitFinal([kept], timeout: 60)
                    #expect(finished.first?.state == .succeeded, "\(finished.first?.reason ?? "")")
                    #expect(try keeper.drover(["logs", String(kept)]).stdout == "kept\n")
                    #expect(try kj.attempts(of: kept).count == 1, "the job was never disturbed")
                    #expect(try keeper.hostState("h1") == "up")
                    try keeper.waitFor("hosts to show 1 coordinator", timeout: 20) {
                        let r = try keeper.drover(["hosts", "--json"])
                        return try JSONDecoder().decode([HostReport].self, from: Data(r.stdout.utf8)).allSatisfy { $0.coordinators == 1 }
                    }
                } catch {
                    if other.pid > 0 { other.kill9() }
                    throw error
                }
                if other.pid > 0 { other.kill9() }
            }
        }
    }
}
