import DroverCoordinator
import DroverSSH
import Foundation
import Testing

extension TestbedSuite {
    @Suite("Hosts failing")
    struct HostFailureTests {
        @Test func poweredOffHostTimesOutWhileOthersAnswer() async throws {
            try await Testbed.withHostKilled("h3") {
                let start = ContinuousClock.now
                let results = await withTaskGroup(of: (String, Result<Double, SSHError>).self) { group in
                    for name in ["h1", "h2", "h3"] {
                        guard var target = try? Testbed.target(name) else {
                            Issue.record("no host \(name) in the testbed's inventory")
                            continue
                        }
                        group.addTask {
                            target.connectTimeout = 2
                            let t0 = ContinuousClock.now
                            do throws(SSHError) {
                                let c = try await SSHConnection.connect(to: target)
                                _ = try await c.run("true")
                                c.close()
                                return (name, .success(Testbed.elapsed(since: t0)))
                            } catch {
                                return (name, .failure(error))
                            }
                        }
                    }
                    var out: [String: Result<Double, SSHError>] = [:]
                    for await (n, r) in group { out[n] = r }
                    return out
                }
                let total = Testbed.elapsed(since: start)
                #expect(total < 3.0, "a dead host delayed the probe to \(total) s with connect_timeout 2 s")
                for name in ["h1", "h2"] {
                    if case .failure(let e) = results[name] { Issue.record("\(name) should answer: \(e)") }
                }
                guard case .failure(let e) = results["h3"] else {
                    Issue.record("h3 is powered off but answered")
                    return
                }
                #expect(e.kind == .timedOut || e.kind == .unreachable, "\(e)")
                let h3 = try Testbed.host("h3").address
                #expect(e.description.hasPrefix("h3: connect to \(h3):22"), "\(e)")
            }
        }

        @Test func reconnectAfterPartitionHeals() async throws {
            var options = SSHOptions()
            options.keepaliveInterval = 1
            options.keepaliveCountMax = 2
            let c = try await Testbed.connect("h2", options: options)
            defer { c.close() }
            #expect(try await c.run("echo before").stdoutText == "before\n")
            try await Testbed.withHostPartitioned("h2") { heal in
                // A command started during the cut fails once keepalives go unanswered.
                let start = ContinuousClock.now
                await #expect {
                    _ = try await c.run("echo during", timeout: 20)
                } throws: { error in
                    let kind = (error as? SSHError)?.kind
                    return kind == .connectionLost || kind == .timedOut
                }
                #expect(Testbed.elapsed(since: start) < 10)
                #expect(!c.isAlive)
                // Reconnecting fails while the cut lasts …
                var target = try Testbed.target("h2")
                target.connectTimeout = 1
                await #expect(throws: SSHError.self) { _ = try await SSHConnection.connect(to: target) }
                // … and works once it heals.
                try heal()
                // Behaviour, not speed: a loaded machine may take more than a second to greet.
                target.connectTimeout = 15
                let again = try await SSHConnection.connect(to: target, options: options)
                #expect(try await again.run("echo after").stdoutText == "after\n")
                again.close()
            }
        }

        @Test func droverHostsShowsThePoweredOffHost() async throws {
            let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("drover").path
            try #require(FileManager.default.fileExists(atPath: binary), "build the drover executable first: swift build --build-tests")
            let inventory = (try Testbed.root()) + "/hosts.json"
            try await Testbed.withHostKilled("h3") {
                let start = ContinuousClock.now
                let r = try Testbed.run(binary, ["hosts", "--inventory", inventory, "--json"])
                #expect(Testbed.elapsed(since: start) < 5, "connect_timeout is 3 s in the testbed inventory")
                #expect(r.status == 1, "exit status is 0 only when every host is up")
                let reports = try JSONDecoder().decode([HostReport].self, from: Data(r.stdout.utf8))
                #expect(reports.map(\.name) == ["h1", "h2", "h3"])
                #expect(reports[0].isUp && reports[1].isUp)
                #expect(reports[0].os == "Linux" && reports[0].cpus ?? 0 >= 1 && reports[0].memoryBytes ?? 0 > 0)
                #expect(reports[0].agentVersion == nil && reports[0].latencyMs != nil)
                #expect(reports[2].state == "timed out" || reports[2].state == "unreachable", "\(reports[2])")
                let h3Address = try Testbed.host("h3").address
                #expect(reports[2].error?.contains(h3Address) == true)

                let table = try Testbed.run(binary, ["hosts", "--inventory", inventory])
                #expect(table.status == 1)
                let lines = table.stdout.split(separator: "\n")
                let h3 = try Testbed.host("h3").address
                #expect(lines.first?.hasPrefix("NAME") == true)
                #expect(lines.contains { $0.hasPrefix("h1 ") && $0.contains(" up ") })
                #expect(lines.contains { $0.hasPrefix("h3: connect to \(h3):22") })
            }
            // All up again: exit status 0.
            let r = try Testbed.run(binary, ["hosts", "--inventory", inventory])
            #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        }

        @Test func droverHostsReportsAnInvalidInventory() throws {
            let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("drover").path
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try "{\"hosts\": [{\"name\": \"a\", \"slot\": 2}]}".write(toFile: dir + "/hosts.json", atomically: true, encoding: .utf8)
            let r = try Testbed.run(binary, ["hosts", "--inventory", dir + "/hosts.json"])
            #expect(r.status == 2)
            #expect(r.stderr == "drover: error: \(dir)/hosts.json:1:26: hosts[0].slot: unknown key; did you mean `slots`?\n")
            #expect(r.stdout.isEmpty)
        }
    }
}
