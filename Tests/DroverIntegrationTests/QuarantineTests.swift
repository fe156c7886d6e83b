import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    /// A real black hole: the tool the jobs run exists on h1 and h2 only (each host has its own
    /// root filesystem), so every job on h3 fails at once with exit 127.
    @Suite("Quarantine of black-hole hosts")
    struct QuarantineTests {
        /// Writes (or removes) `~/bin/gp-like` on `hosts`: it prints its argument's square after 3 s.
        static func tool(on hosts: [String], install: Bool) async throws {
            for name in hosts {
                let c = try await Testbed.connect(name)
                defer { c.close() }
                let script = "#!/bin/sh\\nsleep 3\\necho \"gp-like $1: $(($1 * $1))\"\\n"
                let command = install ? "mkdir -p bin && printf '\(script)' > bin/gp-like && chmod +x bin/gp-like" : "rm -f bin/gp-like"
                let r = try await c.run(command)
                if r.status != .exited(0) { throw TestbedError("\(name): \(command): \(r.stderrText)") }
            }
        }

        /// The testbed's inventory with `defaults.quarantine` (a short cool-down for the test).
        static func inventory(in dir: String) throws -> String {
            let text = try String(contentsOfFile: (try Testbed.root()) + "/hosts.json", encoding: .utf8)
            let quarantine = #""quarantine": {"failures": 4, "within": "10m", "short": "1m", "cooldown": "4s"}, "#
            guard let r = text.range(of: #""defaults": { "#) else { throw TestbedError("the testbed's hosts.json has no defaults") }
            let path = dir + "/hosts.json"
            try (text.replacingCharacters(in: r, with: #""defaults": { "# + quarantine)).write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        @Test func aHostWithoutTheToolIsQuarantinedProbedWithADoublingCoolDownAndReleasedOnceItHasIt() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            try await Self.tool(on: ["h1", "h2"], install: true)
            try await Self.tool(on: ["h3"], install: false)
            do {
                try await run(files)
            } catch {
                try? await Self.tool(on: ["h1", "h2", "h3"], install: false)
                throw error
            }
            try await Self.tool(on: ["h1", "h2", "h3"], install: false)
        }

        func run(_ files: BatchFiles) async throws {
            let jobs = (1...30).map { #"{"id": "n\#($0)", "shell": "\"$HOME/bin/gp-like\" \#($0)"}"# }.joined(separator: ",\n")
            let batch = try files.write("squares.json", """
                {"batch": "squares", "defaults": {"retry": {"max_attempts": 4, "initial": 0}}, "jobs": [
                \(jobs)
                ]}
                """)
            let inventory = try Self.inventory(in: files.dir)
            try await CoordinatorFixture.with(inventory: inventory) { f in
                let submitted = try f.drover(["submit", batch, "--results", files.results])
                #expect(submitted.status == 0, "\(submitted.stderr)")
                let j = try f.journal()
                func quarantineEvents() throws -> [AuditEvent] { try j.events().filter { $0.kind == "quarantine" && $0.host == "h3" } }

                // 1. Four different jobs fail on h3 at once: it is quarantined, with the evidence.
                try f.waitFor("h3 quarantined", timeout: 60) { try quarantineEvents().contains { $0.state == "quarantined" } }
                let trip = try #require(try quarantineEvents().first { $0.state == "quarantined" })
                // As many as the other hosts' successes at the batch ask for (CircuitBreaker.needed), at least 4.
                let streak = trip.message.firstMatch(of: /(\d+) different jobs failed there in a row/).flatMap { Int($0.1) } ?? 0
                #expect(streak >= 4, "\(trip.message)")
                #expect(trip.message.contains("while the other hosts failed 0 of"), "the others' record at the same batch: \(trip.message)")
                #expect(trip.message.components(separatedBy: "exit 127").count - 1 == 4, "the newest four, each with its exit code: \(trip.message)")
                #expect(trip.message.contains("gp-like: not found"), "the head of their stderr: \(trip.message)")
                #expect(trip.message.contains("no new work there for 4 s"), "\(trip.message)")
                #expect(f.log.contains("h3 quarantined"), "the coordinator log says it")
                let table = try f.drover(["hosts", "h3"])
                #expect(table.stdout.contains("quarantined"), "\(table.stdout)")
                #expect(table.stdout.contains("h3: quarantined since"), "the evidence follows the table: \(table.stdout)")

                // 2. After the cool-down one probe runs there; it fails too: the cool-down doubles.
                try f.waitFor("h3's first probe to fail", timeout: 30) {
                    try quarantineEvents().filter { $0.state == "quarantined" }.count >= 2
                }
                let again = try quarantineEvents().filter { $0.state == "quarantined" }[1]
                #expect(again.message.contains("its probe failed") && again.message.contains("exit 127"), "\(again.message)")
                #expect(again.message.contains("no new work there for 8 s"), "doubled: \(again.message)")

                // 3. The quarantine survives a coordinator restart.
                f.kill9()
                try f.start()
                try f.waitFor("h3 still quarantined after the restart", timeout: 10) {
                    try f.drover(["hosts", "h3", "--json"]).stdout.contains(#""state" : "open""#)
                }

                // 4. With the tool installed, the next probe succeeds and h3 takes work again.
                try await Self.tool(on: ["h3"], install: true)
                let pinned = try f.submit(["sh", "-c", #""$HOME/bin/gp-like" 7"#], options: ["--host", "h3"])
                try f.waitFor("h3 released by a successful probe", timeout: 60) { try quarantineEvents().contains { $0.state == "closed" } }
                let closed = try #require(try quarantineEvents().first { $0.state == "closed" })
                #expect(closed.message.contains("succeeded"), "\(closed.message)")
                let done = try f.waitFinal(try j.batchJobs("squares").map(\.id) + [pinned], timeout: 90)
                #expect(done.allSatisfy { $0.state == .succeeded }, "\(done.filter { $0.state != .succeeded }.map { "\($0.label): \($0.reason ?? "")" })")

                // While quarantined, h3 got nothing but its two probes (and its first wave before the trip).
                let probes = try quarantineEvents().filter { $0.state == "probing" }
                #expect(probes.count == 2, "\(probes.map(\.message))")
                let h3 = try j.db.query("SELECT job, attempt FROM attempts WHERE host='h3' AND dispatched_at > ? AND dispatched_at < ?",
                                        .double(trip.time), .double(closed.time))
                let probeAttempts = Set(probes.compactMap { p in p.job.map { "\($0)/\(p.attempt ?? 0)" } })
                #expect(Set(h3.map { "\($0.int("job") ?? 0)/\($0.int("attempt") ?? 0)" }) == probeAttempts)
                // Retries went elsewhere: no job failed twice on h3.
                let twice = try j.db.query("""
                    SELECT job FROM attempts WHERE host='h3' AND agent_state='exited' AND exit_code != 0 GROUP BY job HAVING COUNT(*) > 1
                    """)
                #expect(twice.isEmpty, "jobs retried on the host where they had failed: \(twice.map { $0.int("job") ?? 0 })")
                #expect(files.result("squares", "n12", "stdout") == "gp-like 12: 144\n")
            }
        }
    }
}
