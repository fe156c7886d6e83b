import DroverCoordinator
import DroverCore
import DroverSSH
import Foundation
import Testing

extension TestbedSuite {
    @Suite("Host key changed mid-session")
    struct HostKeyChangeTests {
        /// The SHA256 fingerprint of a public key file, as ssh-keygen prints it.
        static func fingerprint(_ publicKeyFile: String) throws -> String {
            let r = try ChildProcess.run(["/usr/bin/ssh-keygen", "-lf", publicKeyFile])
            return try #require(r.stdoutText.split(separator: " ").first { $0.hasPrefix("SHA256:") }.map(String.init), "\(r.stderrText)")
        }

        /// h2 keeps its address but comes back from a power cycle with another host key while a
        /// coordinator runs: the coordinator never connects on the new key, shows h2 `untrusted`
        /// with a message naming the host, the address, both fingerprints and `ssh-keygen -R`,
        /// records it once in the journal's events, re-runs h2's job elsewhere and keeps running
        /// jobs on h1 and h3. Once the original key is back, h2 is trusted and used again.
        @Test func aHostWhoseKeyChangesIsRefusedAndTheOthersKeepRunning() async throws {
            let dir = try #require(Testbed.directory)
            let h2 = try Testbed.host("h2")
            let keyFile = dir + "/hosts/h2/ssh_host_ed25519_key"
            let originalKey = try Data(contentsOf: URL(fileURLWithPath: keyFile))
            let originalPub = try Data(contentsOf: URL(fileURLWithPath: keyFile + ".pub"))
            let knownHostsBefore = try Data(contentsOf: URL(fileURLWithPath: h2.knownHosts))
            let scratch = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: scratch) }

            /// Writes h2's key files (power-cycling it), and waits until its sshd answers.
            func installKey(_ key: Data, _ pub: Data) throws {
                try Testbed.script("kill", "h2")
                try key.write(to: URL(fileURLWithPath: keyFile))
                try pub.write(to: URL(fileURLWithPath: keyFile + ".pub"))
                chmod(keyFile, 0o600)
                chmod(keyFile + ".pub", 0o644)
                try Testbed.script("start", "h2")
            }
            /// Puts the original key back (also after a failure) and waits until h2 accepts SSH with it.
            func restore() async throws {
                let current = try? Data(contentsOf: URL(fileURLWithPath: keyFile))
                if current != originalKey { try installKey(originalKey, originalPub) }
                let deadline = Date().addingTimeInterval(30)
                while true {
                    do {
                        let c = try await Testbed.connect("h2")
                        await c.shutdown()
                        return
                    } catch {
                        if Date() > deadline { throw TestbedError("h2 is not reachable with its original key again: \(error)") }
                        try await Task.sleep(for: .milliseconds(200))
                    }
                }
            }

            let f = try CoordinatorFixture(deadAfter: 4)
            do {
                try f.startAndWaitForHosts()
                let j = try f.journal()
                // One job per host, so h2 has one running when its key changes.
                let first = try (0..<3).map { _ in try f.submit(["sh", "-c", "sleep 8; hostname"]) }
                let onH2 = try f.runningJob(on: "h2", among: first)
                let agentAttempts = dir + "/hosts/h2/home/.drover/h2/attempts"
                let attemptsBefore = Set((try? FileManager.default.contentsOfDirectory(atPath: agentAttempts)) ?? [])
                #expect(!attemptsBefore.isEmpty, "h2's agent has its attempt on disk")

                // h2 is reinstalled with a new key (same address).
                let newKey = scratch + "/new_host_key"
                let gen = try ChildProcess.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "not-h2", "-f", newKey])
                try #require(gen.status == 0, "\(gen.stderrText)")
                let oldPrint = try Self.fingerprint(keyFile + ".pub")
                let newPrint = try Self.fingerprint(newKey + ".pub")
                try installKey(try Data(contentsOf: URL(fileURLWithPath: newKey)), try Data(contentsOf: URL(fileURLWithPath: newKey + ".pub")))
                let changedAt = Date().timeIntervalSince1970

                try f.waitFor("h2 untrusted", timeout: 45) { try f.hostState("h2") == "untrusted" }
                let record = try #require(try j.hosts().first { $0.name == "h2" })
                let message = record.error ?? ""
                for part in ["h2", h2.address, "REMOTE HOST IDENTIFICATION HAS CHANGED", oldPrint, newPrint, "ssh-keygen -R \(h2.address)"] {
                    #expect(message.contains(part), "host error lacks \"\(part)\": \(message)")
                }

                // The job h2 had, and new ones, finish on h1 and h3.
                let later = try (0..<4).map { _ in try f.submit(["hostname"]) }
                let jobs = try f.waitFinal(first + later, timeout: 90)
                #expect(jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map { "\($0.id) \($0.state) \($0.reason ?? "")" })")
                #expect(try j.job(onH2)?.host != "h2")
                for id in later { #expect(try j.job(id)?.host != "h2") }
                #expect(try j.job(onH2)?.attempt == 2)

                // Nothing was dispatched to h2 after its key changed, and nothing reached it:
                // no agent runs there and its agent has no new attempt.
                let toH2 = try j.db.query("SELECT job FROM attempts WHERE host='h2' AND dispatched_at > ?", .double(changedAt))
                #expect(toH2.isEmpty, "dispatched to h2 after its key changed: \(toH2.compactMap { $0.int("job") })")
                let ps = try Testbed.script("exec", "h2", "ps", "ax")
                #expect(!ps.contains("drover-agent"), "an agent runs on h2: \(ps)")
                let attemptsAfter = Set((try? FileManager.default.contentsOfDirectory(atPath: agentAttempts)) ?? [])
                #expect(attemptsAfter == attemptsBefore)
                // The new key was never recorded.
                #expect(try Data(contentsOf: URL(fileURLWithPath: h2.knownHosts)) == knownHostsBefore)

                // One event for the change, with the same facts; h2 is still untrusted.
                let events = try j.events().filter { $0.host == "h2" && $0.state == "untrusted" }
                #expect(events.count == 1, "\(events.map(\.message))")
                for part in [h2.address, oldPrint, newPrint, "ssh-keygen -R"] {
                    #expect(events.first?.message.contains(part) == true, "event lacks \"\(part)\"")
                }
                #expect(try f.hostState("h2") == "untrusted")
                // `drover hosts` shows it too: LIVENESS untrusted, the probe's own refusal.
                let table = try f.drover(["hosts"])
                let row = table.stdout.split(separator: "\n").first { $0.hasPrefix("h2 ") }.map(String.init) ?? ""
                #expect(row.contains("untrusted") && row.contains("host key mismatch"), "\(table.stdout)")

                // The original key back: h2 is trusted and up again.
                try await restore()
                try f.waitFor("h2 up again", timeout: 40) { try f.hostState("h2") == "up" }
            } catch {
                try? await restore()
                await f.tearDown()
                throw error
            }
            try await restore()
            await f.tearDown()
        }
    }
}
