import DroverCoordinator
import DroverCore
import DroverSSH
import Foundation
import Testing

extension Testbed {
    /// Stops any agent on the testbed hosts (cancelling its jobs) and removes ~/.drover: the
    /// agents of the default roots (`~/.drover/<host>`) and of the legacy root `~/.drover`.
    static func resetAgents() async throws {
        for name in ["h1", "h2", "h3"] {
            let c = try await connect(name)
            _ = try await c.run("for r in ~/.drover ~/.drover/*; do for b in \"$r\"/bin/drover-agent-*; do [ -x \"$b\" ] && \"$b\" stop --kill-jobs --root \"$r\" >/dev/null 2>&1; break; done; done; rm -rf ~/.drover", timeout: 60)
            await c.shutdown()
        }
    }

    /// The fully static agent the hosts run: the one `scripts/install` put in the catalog
    /// (`scripts/test` installs into .build-install and exports XDG_DATA_HOME).
    static func staticAgent() throws -> String {
        let path = AgentCatalog.folder + "/linux-x86_64/drover-agent"
        guard LocalFile.exists(path) else {
            throw TestbedError("no static agent at \(path): run scripts/install --prefix .build-install --data .build-install/share and export XDG_DATA_HOME=$PWD/.build-install/share (scripts/test does)")
        }
        return path
    }

    /// The built drover executable next to the test bundle.
    static var droverBinary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("drover").path
    }
}

extension TestbedSuite {
    @Suite("Deploy")
    struct DeployTests {
        @Test func deployToFreshHostsThenAgainIsIdempotent() async throws {
            try await Testbed.resetAgents()
            let inventory = (try Testbed.root()) + "/hosts.json"
            let first = try Testbed.run(Testbed.droverBinary, ["deploy", "--inventory", inventory, "--json"])
            #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
            let reports = try JSONDecoder().decode([DeployReport].self, from: Data(first.stdout.utf8))
            #expect(reports.map(\.outcome) == [.deployed, .deployed, .deployed])
            #expect(Set(reports.compactMap(\.build)).count == 1)
            // The agents beat: `drover hosts` shows their version.
            let hosts = try Testbed.run(Testbed.droverBinary, ["hosts", "--inventory", inventory, "--json"])
            let probed = try JSONDecoder().decode([HostReport].self, from: Data(hosts.stdout.utf8))
            #expect(probed.allSatisfy { $0.agentVersion == "0.1.0" })
            #expect(probed.allSatisfy { ($0.heartbeatAgeSeconds ?? 99) < 5 }, "\(probed.map(\.heartbeatAgeSeconds))")
            // … and each host's load and free memory, from the heartbeat.
            #expect(probed.allSatisfy { $0.load1 != nil && ($0.memoryAvailableBytes ?? 0) > 0 }, "\(probed.map { ($0.load1, $0.memoryAvailableBytes) })")
            let table = try Testbed.run(Testbed.droverBinary, ["hosts", "--inventory", inventory]).stdout
            #expect(table.split(separator: "\n").first?.contains("LOAD") == true && table.contains("MEM FREE"), "\(table)")

            let second = try Testbed.run(Testbed.droverBinary, ["deploy", "--inventory", inventory, "--json"])
            let again = try JSONDecoder().decode([DeployReport].self, from: Data(second.stdout.utf8))
            #expect(second.status == 0)
            #expect(again.map(\.outcome) == [.upToDate, .upToDate, .upToDate])
            #expect(again.map(\.agentPID) == reports.map(\.agentPID), "an up-to-date agent is not restarted")
            try await Testbed.resetAgents()
        }

        /// A job started under the old agent is still running while `deploy` replaces the agent
        /// (a new agent process of another build), and the new agent records its end.
        @Test func upgradeKeepsRunningJobs() async throws {
            try await Testbed.resetAgents()
            let inventory = (try Testbed.root()) + "/hosts.json"
            #expect(try Testbed.run(Testbed.droverBinary, ["deploy", "--inventory", inventory, "h1"]).status == 0)
            let c = try await Testbed.connect("h1")
            defer { c.close() }
            // The job blocks on a FIFO until the test opens the gate, so it cannot end before the upgrade.
            _ = try await c.run("rm -f ~/upgrade-gate; mkfifo ~/upgrade-gate")
            let submit = try await c.run("~/.drover/h1/bin/drover-agent-* submit --root ~/.drover/h1",
                                         stdin: Array("{\"job\":\"long\",\"attempt\":1,\"argv\":[\"sh\",\"-c\",\"read x < ~/upgrade-gate; echo survived\"]}".utf8))
            #expect(submit.status == .exited(0), "\(submit.stderrText)")
            let transitions = "~/.drover/h1/attempts/long/1/transitions"
            try await Testbed.waitFor("the job to run under the old agent", timeout: 30) {
                try await c.run("grep -q '\"running\"' \(transitions)").status == .exited(0)
            }
            let oldBeat = try JSONParser.parse(try await c.readFile("~/.drover/h1/heartbeat"))
            // A different build: the same agent with one byte appended.
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let next = dir + "/drover-agent"
            var bytes = try LocalFile.read(try Testbed.staticAgent())
            bytes.append(0x0A)
            _ = FileManager.default.createFile(atPath: next, contents: Data(bytes), attributes: [.posixPermissions: 0o755])
            let upgrade = try Testbed.run(Testbed.droverBinary, ["deploy", "--inventory", inventory, "--agent", next, "--json", "h1"])
            let report = try #require(try JSONDecoder().decode([DeployReport].self, from: Data(upgrade.stdout.utf8)).first)
            #expect(report.outcome == .upgraded, "\(upgrade.stdout)")
            #expect(report.build == String(hexString(SHA256.hash(bytes)).prefix(12)))
            let newBeat = try JSONParser.parse(try await c.readFile("~/.drover/h1/heartbeat"))
            #expect(newBeat["build"]?.stringValue == report.build, "the new build beats")
            #expect(newBeat["pid"]?.intValue != oldBeat["pid"]?.intValue, "a new agent process replaced the old one")
            let stillRunning = try await c.run("test -e ~/.drover/h1/attempts/long/1/result.json")
            #expect(stillRunning.status == .exited(1), "the job was still running when the agent was replaced")
            // Open the gate: the job started under the old agent ends and the new one records it.
            _ = try await c.run("echo go > ~/upgrade-gate")
            var out = ""
            try await Testbed.waitFor("the job's result", timeout: 30) {
                out = try await c.run("cat ~/.drover/h1/attempts/long/1/stdout 2>/dev/null; cat ~/.drover/h1/attempts/long/1/result.json 2>/dev/null").stdoutText
                return out.contains("\"reason\"")
            }
            #expect(out.hasPrefix("survived\n") && out.contains("\"reason\":\"exited\""), "\(out)")
            _ = try await c.run("rm -f ~/upgrade-gate")
            try await Testbed.resetAgents()
        }

        @Test func noBinaryForThePlatformSaysWhatToDo() async throws {
            let empty = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: empty) }
            let saved = ProcessInfo.processInfo.environment["XDG_DATA_HOME"]
            setenv("XDG_DATA_HOME", empty, 1)
            defer { if let saved { setenv("XDG_DATA_HOME", saved, 1) } else { unsetenv("XDG_DATA_HOME") } }
            let catalog = try AgentCatalog(explicit: [], drover: "/nonexistent/drover")
            let report = await Deployer(catalog: catalog).deploy(try Testbed.host("h1"))
            #expect(report.outcome == .failed)
            #expect(report.platform == "linux-x86_64")
            #expect(report.message?.contains("no agent binary for linux-x86_64") == true)
            #expect(report.message?.contains("swift build -c release --product drover-agent -Xswiftc -static-executable") == true)
            #expect(report.message?.contains("scripts/install") == true)
        }
    }
}
