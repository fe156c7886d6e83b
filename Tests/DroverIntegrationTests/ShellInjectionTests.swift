import DroverCoordinator
import DroverCore
import DroverSSH
import Foundation
import Testing

extension TestbedSuite {
    /// Remote shell injection through everything a user or an inventory hands to a host: job
    /// argv, env values, cwd, job names, the agent root and inventory env. Every payload would
    /// create a marker file `/tmp/pwned-<tag>-N` if a shell interpreted it; each must instead
    /// arrive byte for byte, and no marker may appear on any host (or here).
    @Suite("Remote shell injection")
    struct ShellInjectionTests {
        let tag = String(UUID().uuidString.prefix(8)).lowercased()

        /// Payloads that would each create the marker `n` if interpreted by a shell.
        func payloads(_ n: Int) -> [String] {
            let m = { (i: Int) in "/tmp/pwned-\(tag)-\(n)-\(i)" }
            return [
                "$(touch \(m(1)))", "`touch \(m(2))`", "; touch \(m(3))", "| touch \(m(4))", "&& touch \(m(5))",
                "\ntouch \(m(6))\n", "' ; touch \(m(7)) ; '", "\" ; touch \(m(8)) ; \"", "${IFS}touch${IFS}\(m(9))",
                "> \(m(10))", "*", "-n", "--help", "a  b\tc", "ünïcødé ✓ 日本", "$HOME", "\\", "",
            ]
        }

        /// `scripts/testbed ARGS…` for the testbed in $DROVER_TESTBED.
        @discardableResult
        static func testbed(_ args: [String]) throws -> String {
            let r = try Testbed.run(Testbed.repoRoot + "/scripts/testbed", args, environment: Testbed.scriptEnvironment)
            guard r.status == 0 else { throw TestbedError("scripts/testbed \(args.joined(separator: " ")) failed: \(r.stderr)") }
            return r.stdout
        }

        /// Markers found on any host's /tmp or in this machine's temporary directory.
        func markers() throws -> [String] {
            var found: [String] = []
            for h in ["h1", "h2", "h3"] {
                let listing = try Self.testbed(["exec", h, "ls", "-A", "/tmp"])
                found += listing.split(separator: "\n").filter { $0.hasPrefix("pwned-\(tag)") }.map { "\(h):/tmp/\($0)" }
            }
            let local = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
            found += local.filter { $0.hasPrefix("pwned-\(tag)") }.map { "local:/tmp/\($0)" }
            return found
        }

        @Test func argvEnvCwdNamesRootAndInventoryEnvArriveByteForByte() async throws {
            let scratch = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            // The testbed inventory with an agent root and an env value full of metacharacters.
            let rootRelative = ".drover-inj \(tag) $(touch /tmp/pwned-\(tag)-root-1);`touch /tmp/pwned-\(tag)-root-2`|x&&y 'q' \"d\" *"
            let inventoryEnv = "inv $(touch /tmp/pwned-\(tag)-inv-1);`touch /tmp/pwned-\(tag)-inv-2`|&&'\"*"
            let data = try Data(contentsOf: URL(fileURLWithPath: (try Testbed.root()) + "/hosts.json"))
            var inventory = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            var defaults = inventory["defaults"] as? [String: Any] ?? [:]
            defaults["root"] = "~/" + rootRelative
            defaults["env"] = ["INV": inventoryEnv]
            inventory["defaults"] = defaults
            let inventoryFile = scratch + "/hosts.json"
            try JSONSerialization.data(withJSONObject: inventory).write(to: URL(fileURLWithPath: inventoryFile))
            let cwd = "/tmp/dir-\(tag) $(touch /tmp/pwned-\(tag)-cwd-1);`touch /tmp/pwned-\(tag)-cwd-2`|&&'q'\"d\"*-ü\nx"
            try Self.testbed(["exec", "h1", "mkdir", "-p", "--", cwd])

            // The payloads hold slashes, so the root and cwd are nested folders: remove from the top.
            let rootTop = "~/" + rootRelative.split(separator: "/")[0]
            let cwdTop = "/tmp/" + cwd.dropFirst(5).split(separator: "/")[0]

            /// Stops the agents in the hostile root and removes it (after the coordinator is gone).
            func cleanUp() async {
                for h in ["h1", "h2", "h3"] {
                    guard let c = try? await Testbed.connect(h) else { continue }
                    let r = RemotePath.shell("~/" + rootRelative)
                    _ = try? await c.run("R=\(r); for b in \"$R\"/bin/drover-agent-*; do [ -x \"$b\" ] && \"$b\" stop --kill-jobs --root \"$R\" >/dev/null 2>&1; break; done; rm -rf -- \(RemotePath.shell(rootTop))", timeout: 60)
                    await c.shutdown()
                }
                _ = try? Self.testbed(["exec", "h1", "rm", "-rf", "--", cwdTop])
            }

            do {
                try await CoordinatorFixture.with(inventory: inventoryFile) { f in
                    // argv, and a job name, through `drover run`.
                    let args = payloads(1)
                    let name = "name \(tag) ;$(touch /tmp/pwned-\(tag)-name-1)`touch /tmp/pwned-\(tag)-name-2`|&& 'q' \"d\" * -x ü\nline"
                    let run = try f.drover(["run", "--name", name, "--", "printf", "<%s>\\n"] + args)
                    #expect(run.status == 0, "\(run.stderr)")
                    #expect(run.stdout == args.map { "<\($0)>\n" }.joined())
                    let named = try #require(try f.journal().resolve(name))
                    #expect(named.name == name && named.state == .succeeded)
                    let logs = try f.drover(["logs", name])
                    #expect(logs.status == 0 && logs.stdout == run.stdout, "\(logs.stderr)")

                    // env values (the job's and the inventory's).
                    let values = payloads(2).filter { !$0.isEmpty }
                    var options: [String] = []
                    for (i, v) in values.enumerated() { options += ["--env", "V\(i)=\(v)"] }
                    let env = try f.drover(["run"] + options + ["--", "printenv"] + values.indices.map { "V\($0)" } + ["INV"])
                    #expect(env.status == 0, "\(env.stderr)")
                    #expect(env.stdout == (values + [inventoryEnv]).map { $0 + "\n" }.joined())

                    // cwd.
                    let pwd = try f.drover(["run", "--host", "h1", "--cwd", cwd, "--", "pwd"])
                    #expect(pwd.status == 0, "\(pwd.stderr)")
                    #expect(pwd.stdout == cwd + "\n")

                    // The agent runs in the root exactly as written, on every host.
                    for h in ["h1", "h2", "h3"] {
                        let heartbeat = (try Testbed.root()) + "/hosts/\(h)/home/" + rootRelative + "/heartbeat"
                        #expect(FileManager.default.fileExists(atPath: heartbeat), "no agent in the literal root on \(h)")
                    }

                    // A batch job id with metacharacters is refused before anything is written.
                    let batch = scratch + "/batch.json"
                    try Data(#"{"batch": "inj", "jobs": [{"id": "a;touch /tmp/pwned-\#(tag)-id-1", "argv": ["true"]}]}"#.utf8).write(to: URL(fileURLWithPath: batch))
                    let journalBefore = try f.journal().jobs().count
                    let stateBefore = try FileManager.default.contentsOfDirectory(atPath: f.state).sorted()
                    let refused = try f.drover(["submit", batch])
                    #expect(refused.status == 2, "\(refused.stdout)\(refused.stderr)")
                    #expect(refused.stderr.contains("jobs[0].id: job id \"a;touch /tmp/pwned-\(tag)-id-1\" may use only"), "\(refused.stderr)")
                    #expect(try f.journal().jobs().count == journalBefore)
                    #expect(try FileManager.default.contentsOfDirectory(atPath: f.state).sorted() == stateBefore)

                    #expect(try markers() == [], "a payload was interpreted by a shell")
                }
            } catch {
                await cleanUp()
                throw error
            }
            await cleanUp()
            #expect(try markers() == [])
            #expect(!FileManager.default.fileExists(atPath: (try Testbed.root()) + "/hosts/h1/home/" + rootTop.dropFirst(2)), "cleanup left the root")
            #expect(!(try Self.testbed(["exec", "h1", "ls", "-A", "/tmp"])).contains("dir-\(tag)"), "cleanup left the cwd")
        }
    }
}
