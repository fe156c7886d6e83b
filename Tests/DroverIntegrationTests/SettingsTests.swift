import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    /// Settings that reach the coordinators commands start, and progress lines that count
    /// jobs as the journal had them.
    @Suite("Settings and progress")
    struct SettingsTests {
        /// The testbed's inventory with `coordinator` added, written into `files`.
        static func inventory(_ coordinator: [String: Any], in files: BatchFiles) throws -> String {
            let data = try Data(contentsOf: URL(fileURLWithPath: (try Testbed.root()) + "/hosts.json"))
            var object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            object["coordinator"] = coordinator
            let text = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted]), as: UTF8.self)
            return try files.write("hosts.json", text)
        }

        @Test func aCoordinatorThatRunStartsTakesDeadAfterFromTheInventory() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let f = try CoordinatorFixture(inventory: try Self.inventory(["dead_after": 3], in: files))
            do {
                // No coordinator runs: `drover run` starts one, with nothing on its command line.
                let r = try f.drover(["run", "--", "hostname"])
                f.adopt(StateLocation(explicit: f.state).runningCoordinator())
                #expect(r.status == 0, "\(r.stderr)")
                let config = try f.drover(["config", "--json"])
                #expect(config.status == 0, "\(config.stderr)")
                let root = try #require(try JSONSerialization.jsonObject(with: Data(config.stdout.utf8)) as? [String: Any])
                let running = try #require(root["running"] as? [String: Any], "drover config sees the running coordinator: \(config.stdout)")
                let settings = try #require(running["settings"] as? [[String: Any]])
                let deadAfter = try #require(settings.first { $0["name"] as? String == "dead_after" })
                #expect(deadAfter["value"] as? Double == 3 && deadAfter["from"] as? String == "inventory" && deadAfter["field"] as? String == "coordinator.dead_after", "\(deadAfter)")
                let idle = try #require(settings.first { $0["name"] as? String == "idle_exit" })
                #expect(idle["value"] as? Double == 600, "a coordinator a command starts exits when idle: \(idle)")
                #expect(f.log.contains("dead_after 3 s (inventory "), "\(f.log.suffix(2000))")
                // And it acts on it: a powered-off host is down within about 3 s, not the default 10.
                let j = try f.journal()
                try f.waitFor("h1, h2 and h3 up", timeout: 30) { Set(try j.hosts().filter { $0.state == "up" }.map(\.name)).isSuperset(of: ["h1", "h2", "h3"]) }
                try await Testbed.withHostKilled("h3") {
                    let killed = Date()
                    try f.waitFor("h3 down", timeout: 15) { try f.hostState("h3") == "down" }
                    let took = Date().timeIntervalSince(killed)
                    #expect(took < 7, "h3 was declared down after \(took) s; dead_after 3 should take about 3")
                }
            } catch {
                await f.tearDown()
                throw error
            }
            await f.tearDown()
        }

        @Test func progressLinesCountJobsAsTheyWereAtEachChange() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let parts = (1...12).map { #"{"id": "p\#($0)", "argv": ["true"]}"# }
            let sum = #"{"id": "sum", "after": [\#((1...12).map { "\"p\($0)\"" }.joined(separator: ", "))], "argv": ["true"]}"#
            let file = try files.write("sum.json", #"{"batch": "sum", "jobs": [\#(parts.joined(separator: ",")), \#(sum)]}"#)
            try await CoordinatorFixture.with { f in
                let r = try f.runBatch(file, files)
                #expect(r.status == 0, "\(r.stderr)")
                let changes = r.stdout.split(separator: "\n").filter { $0.contains(" — ") && $0.contains(" done") }
                #expect(changes.count >= 13, "\(r.stdout)")
                var lastDone = 0
                for line in changes {
                    let counts = line.split(separator: "—").last!
                    let words = counts.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "/" })
                    let done = Int(words[0])!, total = Int(words[1])!
                    let running = words.firstIndex(of: "running").flatMap { Int(words[$0 - 1]) } ?? 0
                    #expect(total == 13)
                    #expect(done >= lastDone, "done never goes back: \(line)")
                    lastDone = done
                    if line.contains(" running on ") {
                        #expect(running >= 1 && done < total, "a line about a job starting counts it running: \(line)")
                    }
                }
                let sumRunning = try #require(changes.first { $0.contains(" sum running") }, "\(r.stdout)")
                #expect(sumRunning.contains("12/13 done, 1 running"), "\(sumRunning)")
                #expect(changes.last?.contains("13/13 done, 0 running") == true, "\(changes.last ?? "")")
                // A batch of seconds shows no jobs-per-minute figure.
                let table = r.stdout.split(separator: "\n").drop { !$0.hasPrefix("HOST") }
                #expect(table.first?.contains("JOBS/MIN") == true, "\(r.stdout)")
                for row in table.dropFirst().prefix { $0.hasPrefix("h") } {
                    #expect(row.hasSuffix("-"), "a rate over a few seconds is not shown: \(row)")
                }
            }
        }
    }
}
