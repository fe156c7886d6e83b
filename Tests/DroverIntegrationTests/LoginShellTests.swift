import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    /// Hosts whose login users have fish (h1), a chatty bash whose rc files print to stdout and
    /// stderr (h2) and tcsh on Debian 11 (h3): hosts, deploy, run, logs and cancel work as for
    /// bash, and job output is byte for byte what the job wrote.
    @Suite("Login shells")
    struct LoginShellTests {
        static let users = ["h1": "dfish", "h2": "dchatty", "h3": "dtcsh"]

        /// The testbed inventory with another login user on each host.
        static func inventoryFile(in dir: String) throws -> String {
            let hosts = try Testbed.inventory().hosts
            let entries = hosts.filter { users[$0.name] != nil }.map { h in
                #"{ "name": "\#(h.name)", "address": "\#(h.address)", "user": "\#(users[h.name]!)", "identity": "\#(h.identities.first ?? "")", "known_hosts": "\#(h.knownHosts)", "connect_timeout": 5 }"#
            }
            let path = dir + "/login-shells.json"
            try "{ \"hosts\": [\n\(entries.joined(separator: ",\n"))\n] }\n".write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        @Test func fishTcshAndChattyBashRunJobsWithCleanOutput() async throws {
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let inventory = try Self.inventoryFile(in: dir)
            defer {
                for (host, user) in Self.users {
                    _ = try? Testbed.script("exec", host, "sh", "-c", "pkill -KILL -u \(user) -f drover-agent; rm -rf /home/\(user)/.drover")
                }
            }

            // drover hosts: every host up with its platform (no banner in the parse).
            let hosts = try Testbed.run(Testbed.droverBinary, ["hosts", "--inventory", inventory, "--json"])
            let probed = try JSONDecoder().decode([HostReport].self, from: Data(hosts.stdout.utf8))
            #expect(probed.count == 3)
            for r in probed {
                #expect(r.state == "up" && r.os == "Linux" && r.arch == "x86_64", "\(r.name) as \(Self.users[r.name] ?? ""): \(r.state) \(r.error ?? "")")
            }

            // drover deploy: the static agent, everywhere.
            let deploy = try Testbed.run(Testbed.droverBinary, ["deploy", "--inventory", inventory, "--json"])
            #expect(deploy.status == 0, "\(deploy.stdout)\(deploy.stderr)")
            let reports = try JSONDecoder().decode([DeployReport].self, from: Data(deploy.stdout.utf8))
            #expect(reports.allSatisfy { $0.outcome == .deployed || $0.outcome == .upToDate }, "\(reports.map { "\($0.host): \($0.outcome) \($0.message ?? "")" })")

            // The fixture waits for h1, h2 and h3 up (as dfish, dchatty and dtcsh).
            try await CoordinatorFixture.with(inventory: inventory) { f in
                for host in ["h1", "h2", "h3"] {
                    // Bytes a banner could be confused with, and no trailing newline.
                    let script = #"printf 'out %s\n' "$1"; printf 'err line\n' >&2; printf 'last'"#
                    let run = try f.drover(["run", "--host", host, "--", "sh", "-c", script, "sh", "x y"])
                    #expect(run.status == 0, "\(host): \(run.stderr)")
                    #expect(run.stdout == "out x y\nlast", "\(host) as \(Self.users[host]!): stdout \(run.stdout.debugDescription)")
                    #expect(!run.stderr.contains("Welcome") && !run.stderr.contains("module load") && !run.stderr.contains("banner"), "\(host): \(run.stderr)")
                    let id = try #require(try f.journal().jobs().filter { $0.host == host }.map(\.id).max())
                    let logs = try f.drover(["logs", String(id)])
                    #expect(logs.stdout == "out x y\nlast", "\(host): logs \(logs.stdout.debugDescription)")
                    let errs = try f.drover(["logs", "--stderr", String(id)])
                    #expect(errs.stderr == "err line\n", "\(host): logs --stderr \(errs.stderr.debugDescription)")
                }

                // cancel under tcsh on Debian 11: returns once the job's processes are gone.
                let id = try f.submit(["sleep", "300"], options: ["--host", "h3"])
                try f.waitFor("job \(id) running on h3", timeout: 30) { try f.journal().job(id)?.state == .running }
                let cancel = try f.drover(["cancel", String(id)])
                #expect(cancel.status == 0, "\(cancel.stderr)")
                let left = try Testbed.run(Testbed.repoRoot + "/scripts/testbed", ["exec", "h3", "pgrep", "-u", "dtcsh", "-x", "sleep"], environment: Testbed.scriptEnvironment)
                #expect(left.status == 1, "sleep still runs on h3: \(left.stdout)")
                _ = try f.drover(["down", "--kill-jobs"])
            }
        }
    }
}
