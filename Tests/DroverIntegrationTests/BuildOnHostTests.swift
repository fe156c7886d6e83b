import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension Testbed {
    /// The testbed host whose root has a Swift toolchain (`scripts/testbed up N --toolchain HOST`), if any.
    static var toolchainHost: String? {
        guard directory != nil, let r = try? run(repoRoot + "/scripts/testbed", ["status", "--json"], environment: scriptEnvironment),
              r.status == 0, let list = try? JSONParser.parse(r.stdout).arrayValue else { return nil }
        return list.first { $0["image"]?.stringValue?.hasSuffix("-toolchain") == true }?["host"]?.stringValue
    }
}

extension TestbedSuite {
    /// `drover deploy --build-on-host` on a host with a Swift toolchain (read-only /opt/swift):
    /// the agent is built there, checked, stored in the local catalog and deployed; the stored
    /// binary then serves a host without Swift as a plain upload.
    @Suite("Build on host", .enabled(if: Testbed.toolchainHost != nil, "the testbed has no host with a Swift toolchain: start it with `scripts/testbed up 3 --toolchain h2`"))
    struct BuildOnHostTests {
        @Test(.timeLimit(.minutes(5)))
        func theAgentBuiltOnTheHostIsStoredInTheCatalogAndServesOtherHosts() throws {
            let builder = try #require(Testbed.toolchainHost)
            let other = builder == "h1" ? "h3" : "h1"
            let data = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: data) }
            let inventory = (try Testbed.root()) + "/hosts.json"
            var env = ProcessInfo.processInfo.environment
            env["XDG_DATA_HOME"] = data
            env["DROVER_AGENT_SOURCE"] = Testbed.repoRoot
            let environment = env.map { "\($0.key)=\($0.value)" }
            func deploy(_ args: [String]) throws -> (Int32, [DeployReport], String) {
                let r = try ChildProcess.run([Testbed.droverBinary, "deploy", "--inventory", inventory, "--json"] + args, environment: environment, timeout: 280)
                return (r.status, (try? JSONDecoder().decode([DeployReport].self, from: Data(r.stdout))) ?? [], r.stdoutText + r.stderrText)
            }
            defer {
                for h in [builder, other] { _ = try? Testbed.script("exec", h, "sh", "-c", "pkill -KILL -f drover-agent; rm -rf /home/dtest/.drover") }
            }

            // An empty catalog and a host with swift: built there, stored here, deployed.
            let (status, reports, text) = try deploy(["--build-on-host", builder])
            #expect(status == 0, "\(text)")
            let report = try #require(reports.first)
            #expect(report.outcome == .deployed, "\(text)")
            #expect(report.message?.contains("built on the host with its Swift toolchain") == true, "\(text)")
            let stored = data + "/drover/agents/linux-x86_64/drover-agent"
            let binary = try #require(try AgentBinary.inspect(stored), "nothing stored at \(stored)")
            #expect(binary.build == report.build)
            #expect(binary.linkage?.isStatic == true, "the Linux build on the host is static: \(String(describing: binary.linkage))")

            // The stored binary serves a host without Swift: a plain upload, no build.
            let (status2, reports2, text2) = try deploy([other])
            #expect(status2 == 0, "\(text2)")
            #expect(reports2.first?.outcome == .deployed && reports2.first?.build == binary.build, "\(text2)")
            #expect(reports2.first?.message?.contains("built") != true, "\(text2)")
        }
    }
}
