import DroverCoordinator
import DroverCore
import DroverInventory
import DroverSSH
import Foundation
import Testing

extension Testbed {
    /// The first host of the testbed's hosts.json reached through a hop (a `jump` field), as
    /// `scripts/testbed up N --bastion` writes it; nil when the testbed has none.
    static var bastionHost: HostSpec? {
        guard directory != nil, let inventory = try? inventory() else { return nil }
        return inventory.hosts.first { !$0.jump.isEmpty }
    }

    /// A copy of the testbed's known_hosts in which `address`'s key is replaced by another
    /// host's, so that the host at `address` looks like it changed its key. Returns the file.
    static func knownHostsWithWrongKey(for address: String, in directory: String) throws -> String {
        let host = try Testbed.host(bastionHost!.name)
        let text = try String(contentsOfFile: host.knownHosts, encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init)
        let other = try #require(lines.first { !$0.hasPrefix(address + " ") && $0.split(separator: " ").count >= 3 },
                                 "no other host key in \(host.knownHosts)")
        let otherKey = other.split(separator: " ")[1...2].joined(separator: " ")
        let wrong = lines.map { $0.hasPrefix(address + " ") ? "\(address) \(otherKey)" : $0 }
        #expect(wrong != lines, "\(address) is not in \(host.knownHosts)")
        let file = directory + "/known_hosts"
        try (wrong.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}

extension TestbedSuite {
    /// Hosts behind a bastion (`jump` / `ProxyJump`), on a testbed with such a host.
    @Suite("Bastion", .enabled(if: Testbed.bastionHost != nil, "the testbed has no host behind a bastion (a host with `jump` in hosts.json): start it with `scripts/testbed up 3 --bastion`"))
    struct BastionTests {
        let behind: HostSpec
        let hop: String

        init() throws {
            behind = try #require(Testbed.bastionHost)
            hop = try #require(behind.via.last)
        }

        @Test func connectAndRunThroughTheBastion() async throws {
            // Really behind it: no direct way from this machine.
            var direct = Testbed.target(behind)
            direct.jump = []
            direct.connectTimeout = 1
            await #expect(throws: SSHError.self, "\(behind.name) answers directly, so it is not behind \(hop)") {
                let c = try await SSHConnection.connect(to: direct)
                await c.shutdown()
            }

            let c = try await SSHConnection.connect(to: Testbed.target(behind))
            #expect(c.route == behind.via)
            let r = try await c.run("hostname")
            #expect(r.stdoutText == "\(behind.name)\n")
            // Both directions carry more than a window's worth of data.
            let input = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let sum = try await c.run("sha256sum", stdin: input)
            #expect(sum.stdoutText.hasPrefix(hexString(SHA256.hash(input))))
            let big = try await c.run("head -c 20000000 /dev/zero | wc -c")
            #expect(big.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "20000000")
            // Many channels at once over the one tunnel.
            try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<8 { group.addTask { try await c.run("echo \(i)").stdoutText } }
                var seen = Set<String>()
                for try await line in group { seen.insert(line) }
                #expect(seen.count == 8)
            }
            try await c.upload(Array("through \(hop)".utf8), to: "/tmp/drover-bastion-test")
            #expect(try await c.readFile("/tmp/drover-bastion-test") == Array("through \(hop)".utf8))
            try await c.remove("/tmp/drover-bastion-test")
            await c.shutdown()
        }

        @Test func aChainOfTwoHops() async throws {
            // Another direct host first, then the bastion: `ProxyJump other,hop`.
            let inventory = try Testbed.inventory()
            let other = try #require(inventory.hosts.first { $0.jump.isEmpty && $0.name != hop && $0.transport == .ssh })
            var target = Testbed.target(behind)
            target.jump = [Testbed.target(other)] + target.jump
            let c = try await SSHConnection.connect(to: target)
            #expect(c.route == [other.name] + behind.via)
            #expect(try await c.run("hostname").stdoutText == "\(behind.name)\n")
            await c.shutdown()

            // A mismatch at the first hop names it, with the whole route.
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            target.jump[0].knownHostsFile = try Testbed.knownHostsWithWrongKey(for: other.address, in: dir)
            do {
                let c = try await SSHConnection.connect(to: target)
                await c.shutdown()
                Issue.record("connected through \(other.name) although its key does not match")
            } catch {
                #expect(error.kind == .hostKeyMismatch && error.hop == other.name, "\(error)")
                #expect(error.description.hasPrefix("\(behind.name) via \(([other.name] + behind.via).joined(separator: ",")): host key mismatch at \(other.name): "), "\(error)")
            }
        }

        @Test func droverHostsShowsTheRoute() async throws {
            let report = await HostProbe().probe(behind)
            #expect(report.state == "up", "\(report.error ?? "")")
            #expect(report.address == "\(behind.address):\(behind.port) via \(behind.via.joined(separator: ","))")
            #expect(report.via == behind.via)
            let table = try Testbed.run(Testbed.droverBinary, ["hosts", "--inventory", (try Testbed.root()) + "/hosts.json", behind.name])
            #expect(table.status == 0, "\(table.stderr)")
            #expect(table.stdout.contains("\(behind.address):\(behind.port) via \(behind.via.joined(separator: ","))"), "\(table.stdout)")
        }

        @Test func hostKeyMismatchAtTheHopNamesTheHop() async throws {
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var target = Testbed.target(behind)
            let last = target.jump.count - 1
            target.jump[last].knownHostsFile = try Testbed.knownHostsWithWrongKey(for: target.jump[last].address, in: dir)
            do {
                let c = try await SSHConnection.connect(to: target)
                await c.shutdown()
                Issue.record("connected through \(hop) although its key does not match")
            } catch {
                #expect(error.kind == .hostKeyMismatch)
                #expect(error.host == behind.name && error.hop == hop && error.via == behind.via)
                #expect(error.description.hasPrefix("\(behind.name) via \(behind.via.joined(separator: ",")): host key mismatch at \(hop): verify host key of \(target.jump[last].endpoint)"), "\(error)")
                #expect(error.description.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"))
            }
        }

        @Test func hostKeyMismatchAtTheTargetNamesTheTargetAndTheRoute() async throws {
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var target = Testbed.target(behind)
            target.knownHostsFile = try Testbed.knownHostsWithWrongKey(for: behind.address, in: dir)
            do {
                let c = try await SSHConnection.connect(to: target)
                await c.shutdown()
                Issue.record("connected to \(behind.name) although its key does not match")
            } catch {
                #expect(error.kind == .hostKeyMismatch)
                #expect(error.host == behind.name && error.hop == nil && error.via == behind.via)
                #expect(error.description.hasPrefix("\(behind.name) via \(behind.via.joined(separator: ",")): verify host key of \(target.endpoint)"), "\(error)")
            }
        }

        @Test func aTunnelTheHopCannotOpenNamesTheHopAndTheDestination() async throws {
            var target = Testbed.target(behind)
            target.port = 2  // nothing listens there
            do {
                let c = try await SSHConnection.connect(to: target)
                await c.shutdown()
                Issue.record("connected to port 2")
            } catch {
                #expect(error.hop == hop)
                #expect(error.description.hasPrefix("\(behind.name) via \(behind.via.joined(separator: ",")): open a tunnel: \(hop) refused the tunnel to \(target.endpoint) (connect failed)"), "\(error)")
            }
        }

        @Test func aHopThatForbidsForwardingIsNamed() async throws {
            // A second sshd on the hop, port 2222, with its own key and AllowTcpForwarding no.
            var target = Testbed.target(behind)
            let last = target.jump.count - 1
            let hopAddress = target.jump[last].address
            let setup = """
                set -e; d=/tmp/drover-noforward; rm -rf $d; mkdir -p $d
                ssh-keygen -q -N '' -t ed25519 -f $d/key
                printf '%s\\n' "ListenAddress \(hopAddress)" 'Port 2222' "HostKey $d/key" "PidFile $d/pid" \\
                  'UsePAM no' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' "AllowUsers \(target.jump[last].user)" \\
                  'AllowTcpForwarding no' > $d/config
                /usr/sbin/sshd -f $d/config
                cat $d/key.pub
                """
            defer { _ = try? Testbed.script("exec", hop, "sh", "-c", "kill $(cat /tmp/drover-noforward/pid) 2>/dev/null; rm -rf /tmp/drover-noforward") }
            let pub = try Testbed.script("exec", hop, "sh", "-c", setup).split(separator: " ")
            try #require(pub.count >= 2)
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let knownHosts = dir + "/known_hosts"
            try "[\(hopAddress)]:2222 \(pub[0]) \(pub[1])\n".write(toFile: knownHosts, atomically: true, encoding: .utf8)
            target.jump[last].port = 2222
            target.jump[last].knownHostsFile = knownHosts
            do {
                let c = try await SSHConnection.connect(to: target)
                await c.shutdown()
                Issue.record("connected through a hop that forbids forwarding")
            } catch {
                #expect(error.hop == hop && error.kind == .channelFailed, "\(error)")
                #expect(error.description.hasPrefix("\(behind.name) via \(behind.via.joined(separator: ",")): open a tunnel: \(hop) refused the tunnel to \(target.endpoint) (administratively prohibited)"), "\(error)")
            }
        }

        @Test func theBastionPoweredOffMakesTheHostUnreachableAndItComesBack() async throws {
            var options = SSHOptions()
            options.keepaliveInterval = 1
            options.keepaliveCountMax = 2
            var target = Testbed.target(behind)
            target.connectTimeout = 2
            for i in target.jump.indices { target.jump[i].connectTimeout = 2 }
            let c = try await SSHConnection.connect(to: target, options: options)
            #expect(try await c.run("echo before").stdoutText == "before\n")
            try await Testbed.withHostKilled(hop) {
                // A command running through the dead bastion fails once its keepalives go
                // unanswered, naming the bastion.
                let start = ContinuousClock.now
                do throws(SSHError) {
                    _ = try await c.run("sleep 60", timeout: 30)
                    Issue.record("a command through the powered-off \(hop) finished")
                } catch {
                    #expect(error.kind == .connectionLost, "\(error)")
                    #expect(error.hop == hop, "\(error)")
                    #expect(error.description.contains("the connection to \(hop) failed"), "\(error)")
                }
                #expect(Testbed.elapsed(since: start) < 15)
                #expect(!c.isAlive)
                // A new connection fails at the hop, within the hop's connect_timeout.
                let t0 = ContinuousClock.now
                do throws(SSHError) {
                    let again = try await SSHConnection.connect(to: target, options: options)
                    await again.shutdown()
                    Issue.record("connected through the powered-off \(hop)")
                } catch {
                    #expect(error.hop == hop && error.host == behind.name, "\(error)")
                    #expect(error.kind == .timedOut || error.kind == .unreachable, "\(error)")
                    #expect(error.description.hasPrefix("\(behind.name) via \(behind.via.joined(separator: ",")): "), "\(error)")
                    #expect(error.operation.hasSuffix(" at \(hop)"), "\(error)")
                }
                #expect(Testbed.elapsed(since: t0) < 4)
            }
            await c.shutdown()
            // Powered on again: a new connection goes through a new hop connection.
            let back = try await SSHConnection.connect(to: target, options: options)
            #expect(try await back.run("hostname").stdoutText == "\(behind.name)\n")
            await back.shutdown()
        }

        @Test func theCoordinatorTakesHostsBehindADeadBastionDownAndBack() async throws {
            try await CoordinatorFixture.with(deadAfter: 4) { f in
                try f.waitFor("\(behind.name) up", timeout: 30) { try f.hostState(behind.name) == "up" }
                let before = try f.drover(["run", "--host", behind.name, "--", "hostname"])
                #expect(before.status == 0 && before.stdout == "\(behind.name)\n", "\(before.stderr)")
                try await Testbed.withHostKilled(hop) {
                    try f.waitFor("\(behind.name) down with \(hop) off", timeout: 30) { try f.hostState(behind.name) == "down" }
                }
                try f.waitFor("\(behind.name) up again through \(hop)", timeout: 60) { try f.hostState(behind.name) == "up" }
                let after = try f.drover(["run", "--host", behind.name, "--", "hostname"])
                #expect(after.status == 0 && after.stdout == "\(behind.name)\n", "\(after.stderr)")
            }
        }
    }
}
