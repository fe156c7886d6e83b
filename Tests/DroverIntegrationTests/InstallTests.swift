import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    /// What a new user gets from `scripts/install` (scripts/test installs into .build-install):
    /// a `drover` whose first `drover run` works on a host without Swift, with an old glibc.
    @Suite("Install")
    struct InstallTests {
        static var prefix: String? { ProcessInfo.processInfo.environment["DROVER_INSTALL_PREFIX"] }

        @Test func installedDroverRunsAJobOnTheDebian11HostWithoutSwift() throws {
            guard let prefix = Self.prefix else {
                Issue.record("DROVER_INSTALL_PREFIX is not set: scripts/test runs scripts/install --prefix .build-install first")
                return
            }
            let drover = prefix + "/bin/drover"
            let state = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }
            let inventory = (try Testbed.root()) + "/hosts.json"
            // h3 is the bullseye host: glibc 2.31, no /opt/swift.
            let facts = try Testbed.run(Testbed.repoRoot + "/scripts/testbed", ["exec", "h3", "sh", "-c", "getconf GNU_LIBC_VERSION; ls /opt/swift 2>&1 || true"], environment: Testbed.scriptEnvironment)
            #expect(facts.stdout.contains("glibc 2.31"), "\(facts.stdout)")
            #expect(!facts.stdout.contains("usr"), "h3 must not have a Swift toolchain: \(facts.stdout)")

            let run = try Testbed.run(drover, ["run", "--state", state, "--inventory", inventory, "--host", "h3", "--", "sh", "-c", "getconf GNU_LIBC_VERSION; echo ran"])
            defer { _ = try? Testbed.run(drover, ["down", "--kill-jobs", "--state", state, "--inventory", inventory]) }
            #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
            #expect(run.stdout == "glibc 2.31\nran\n", "\(run.stdout.debugDescription)")
        }
    }
}
