import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation
import Testing

extension TestbedSuite.BastionTests {
    /// The coordinator with a host behind the bastion: hosts, deploy, run and cancel go through
    /// the hop; the bastion powered off makes the host behind it down, and it comes back up.
    @Test func theCoordinatorRunsCancelsAndFollowsAHostBehindTheBastion() async throws {
        let dir = try Testbed.tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Only the bastion and the host behind it (the other hosts would change the counts).
        let all = try String(contentsOfFile: (try Testbed.root()) + "/hosts.json", encoding: .utf8)
        let inventory = try Testbed.inventory()
        let keep = Set([hop, behind.name])
        let node = try JSONParser.parse(all)
        let hosts = (node["hosts"]?.arrayValue ?? []).filter { keep.contains($0["name"]?.stringValue ?? "") }
        #expect(hosts.count == 2, "hosts.json has no \(hop) and \(behind.name)")
        let defaults = try #require(inventory.hosts.first)
        let entries = hosts.map { h -> String in
            let jump = h["jump"]?.stringValue.map { #", "jump": "\#($0)""# } ?? ""
            return #"{ "name": "\#(h["name"]!.stringValue!)", "address": "\#(h["address"]!.stringValue!)"\#(jump) }"#
        }
        let file = dir + "/bastion.json"
        try """
            { "defaults": { "user": "\(defaults.user)", "identity": "\(defaults.identities.first ?? "")", "known_hosts": "\(defaults.knownHosts)", "connect_timeout": 3 },
              "hosts": [ \(entries.joined(separator: ", ")) ] }
            """.write(toFile: file, atomically: true, encoding: .utf8)

        let probe = try Testbed.run(Testbed.droverBinary, ["hosts", "--inventory", file, "--json"])
        let reports = try JSONDecoder().decode([HostReport].self, from: Data(probe.stdout.utf8))
        #expect(reports.allSatisfy { $0.state == "up" }, "\(reports.map { "\($0.name) \($0.state) \($0.error ?? "")" })")

        // Two hosts: the fixture is started by hand (`with` waits for the testbed's three).
        let f = try CoordinatorFixture(deadAfter: 5, inventory: file)
        do {
            try f.start()
            let j = try f.journal()
            try f.waitFor("\(hop) and \(behind.name) up", timeout: 30) { try j.hosts().filter { $0.state == "up" }.count == 2 }
            let run = try f.drover(["run", "--host", behind.name, "--", "hostname"])
            #expect(run.status == 0 && run.stdout == "\(behind.name)\n", "\(run.stdout)\(run.stderr)")

            let id = try f.submit(["sleep", "300"], options: ["--host", behind.name])
            try f.waitFor("job \(id) running", timeout: 30) { try j.job(id)?.state == .running }
            #expect(try f.drover(["cancel", String(id)]).status == 0)
            let left = try Testbed.run(Testbed.repoRoot + "/scripts/testbed", ["exec", behind.name, "pgrep", "-x", "sleep"], environment: Testbed.scriptEnvironment)
            #expect(left.status == 1, "sleep still runs behind the bastion: \(left.stdout)")

            try await Testbed.withHostKilled(hop) {
                try f.waitFor("\(behind.name) down while \(hop) is off", timeout: 40) { try f.hostState(behind.name) == "down" }
            }
            try f.waitFor("\(behind.name) up again through \(hop)", timeout: 60) { try f.hostState(behind.name) == "up" }
            let again = try f.drover(["run", "--host", behind.name, "--", "echo", "back"])
            #expect(again.status == 0 && again.stdout == "back\n", "\(again.stdout)\(again.stderr)")
            _ = try f.drover(["down", "--kill-jobs"])
        } catch {
            await f.tearDown()
            throw error
        }
        await f.tearDown()
    }
}
