import DroverCore
import DroverSSH
import Foundation
import Testing

extension TestbedSuite {
    @Suite("SSH host keys and authentication")
    struct SSHTrustTests {
        /// The testbed's known_hosts line for a host.
        static func knownHostsLine(_ address: String) throws -> String {
            let text = try String(contentsOfFile: (try Testbed.root()) + "/known_hosts", encoding: .utf8)
            return try #require(text.split(separator: "\n").first { $0.hasPrefix(address + " ") }.map(String.init))
        }

        @Test func changedHostKeyIsRefusedWithBothFingerprints() async throws {
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            // Claim that h1's address has h2's key.
            let (a1, a2) = (try Testbed.host("h1").address, try Testbed.host("h2").address)
            let h2Key = try Self.knownHostsLine(a2).split(separator: " ").dropFirst().joined(separator: " ")
            try "\(a1) \(h2Key)\n".write(toFile: dir + "/known_hosts", atomically: true, encoding: .utf8)
            var target = try Testbed.target("h1")
            target.knownHostsFile = dir + "/known_hosts"
            target.acceptNewHostKeys = true  // a changed key is refused even under accept-new
            do {
                _ = try await SSHConnection.connect(to: target)
                Issue.record("connected despite a changed host key")
            } catch {
                #expect(error.kind == .hostKeyMismatch)
                let prints = error.message.matches(of: /SHA256:[A-Za-z0-9+\/]{43}/).map { String($0.output) }
                #expect(Set(prints).count == 2, "\(error.message)")
                #expect(error.message.contains("ssh-keygen -R \(a1)"))
                #expect(error.message.contains(dir + "/known_hosts:1"))
            }
        }

        @Test func unknownHostRefusedUnderStrictAndRecordedUnderAcceptNew() async throws {
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var target = try Testbed.target("h3")
            let a3 = target.address
            target.knownHostsFile = dir + "/kh/known_hosts"
            do {
                _ = try await SSHConnection.connect(to: target)
                Issue.record("connected to an unknown host under strict")
            } catch {
                #expect(error.kind == .unknownHostKey)
                #expect(error.message.contains("ssh-keyscan -t ssh-ed25519 \(a3)"))
                #expect(error.message.contains("accept-new"))
            }
            #expect(!FileManager.default.fileExists(atPath: target.knownHostsFile))
            target.acceptNewHostKeys = true
            let c = try await SSHConnection.connect(to: target)
            c.close()
            let recorded = try String(contentsOfFile: target.knownHostsFile, encoding: .utf8)
            #expect(recorded == (try Self.knownHostsLine(a3)) + "\n")
            // Now known: strict accepts it.
            target.acceptNewHostKeys = false
            let again = try await SSHConnection.connect(to: target)
            #expect(try await again.run("hostname").stdoutText == "h3\n")
            again.close()
        }

        @Test func wrongKeyIsRefusedClearly() async throws {
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            _ = try Testbed.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", dir + "/stranger"])
            var target = try Testbed.target("h1")
            target.identities = [dir + "/stranger"]
            do {
                _ = try await SSHConnection.connect(to: target)
                Issue.record("a key that is not authorized was accepted")
            } catch {
                #expect(error.kind == .authenticationRefused)
                #expect(error.message.contains(dir + "/stranger"))
                #expect(error.message.contains("authorized_keys"))
                #expect(error.shortReason == "auth refused")
            }
        }

        @Test func rsaKeyRefusedForSHA1IsExplained() async throws {
            var target = try Testbed.target("h1")
            target.identities = [(try Testbed.root()) + "/id_rsa"]
            do {
                _ = try await SSHConnection.connect(to: target)
                Issue.record("an RSA key signed with SHA-1 was accepted by OpenSSH ≥ 8.8")
            } catch {
                #expect(error.kind == .rsaSHA1Refused)
                #expect(error.message.contains("SHA-1"))
                #expect(error.message.contains("ed25519"))
            }
        }

        @Test func agentKeysAreOffered() async throws {
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let sock = dir + "/agent.sock"
            // ssh-agent daemonizes and prints its pid; stop it by that pid afterwards.
            let started = try Testbed.run("/usr/bin/ssh-agent", ["-s", "-a", sock])
            let pid = try #require(started.stdout.firstMatch(of: /SSH_AGENT_PID=(\d+)/).flatMap { Int32($0.1) })
            defer { kill(pid, SIGTERM) }
            let add = try Testbed.run("/usr/bin/ssh-add", [(try Testbed.root()) + "/id_ed25519"], environment: ["SSH_AUTH_SOCK": sock])
            #expect(add.status == 0, "\(add.stderr)")
            setenv("SSH_AUTH_SOCK", sock, 1)
            defer { unsetenv("SSH_AUTH_SOCK") }
            var target = try Testbed.target("h2")
            target.identities = []
            target.useAgent = true
            let c = try await SSHConnection.connect(to: target)
            #expect(try await c.run("echo via-agent").stdoutText == "via-agent\n")
            c.close()
        }

        @Test func unsupportedSSHConfigIsRefusedBeforeConnecting() async throws {
            var target = try Testbed.target("h1")
            target.unsupportedConfig = ["~/.ssh/config:3: `ProxyJump bastion` is not supported by Drover yet"]
            do {
                _ = try await SSHConnection.connect(to: target)
                Issue.record("connected directly despite ProxyJump")
            } catch {
                #expect(error.kind == .unsupportedConfig)
                #expect(error.message.contains("ProxyJump"))
            }
        }
    }
}
