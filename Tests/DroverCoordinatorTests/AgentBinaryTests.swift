import DroverCore
import Foundation
import Testing
@testable import DroverCoordinator

@Suite("Agent binaries")
struct AgentBinaryTests {
    @Test func platformFromHeaders() {
        var elf = [UInt8](repeating: 0, count: 64)
        elf[0] = 0x7F; elf[1] = UInt8(ascii: "E"); elf[2] = UInt8(ascii: "L"); elf[3] = UInt8(ascii: "F")
        elf[18] = 0x3E
        #expect(AgentBinary.platform(ofExecutable: elf) == "linux-x86_64")
        elf[18] = 0xB7
        #expect(AgentBinary.platform(ofExecutable: elf) == "linux-aarch64")
        let macho: [UInt8] = [0xCF, 0xFA, 0xED, 0xFE, 0x0C, 0x00, 0x00, 0x01, 0, 0, 0, 0]
        #expect(AgentBinary.platform(ofExecutable: macho) == "darwin-arm64")
        #expect(AgentBinary.platform(ofExecutable: Array("#!/bin/sh\n".utf8)) == nil)
    }

    @Test func hostPlatformNames() {
        #expect(AgentBinary.platform(os: "Linux", arch: "x86_64") == "linux-x86_64")
        #expect(AgentBinary.platform(os: "Linux", arch: "arm64") == "linux-aarch64")
        #expect(AgentBinary.platform(os: "Darwin", arch: "arm64") == "darwin-arm64")
    }

    @Test func glibcComparison() {
        #expect(VersionNumber.atLeast("2.36", "2.31"))
        #expect(VersionNumber.atLeast("2.36", "2.36"))
        #expect(!VersionNumber.atLeast("2.31", "2.36"))
        #expect(VersionNumber.atLeast("2.4", "2.3.9"))
    }

    /// A system program: dynamically linked against glibc, so it names its loader and libc and a glibc version.
    @Test func dynamicSystemBinaryShowsItsLoaderLibrariesAndGlibc() throws {
        let linkage = try #require(ELFLinkage.read(try LocalFile.read("/bin/true")))
        #expect(!linkage.isStatic)
        #expect(linkage.interpreter?.contains("ld-linux") == true)
        #expect(linkage.needed.contains("libc.so.6"))
        #expect(linkage.glibc.map { VersionNumber.atLeast($0, "2.2.5") } == true)
        let binary = try #require(try AgentBinary.inspect("/bin/true"))
        #expect(binary.unfit(platform: binary.platform, glibc: "2.0")?.contains("needs glibc") == true)
        #expect(binary.unfit(platform: binary.platform, glibc: "99.0") == nil)
        #expect(binary.unfit(platform: binary.platform, glibc: nil)?.contains("the host has no glibc") == true)
        #expect(binary.unfit(platform: "linux-aarch64", glibc: "2.36") == "built for \(binary.platform)")
    }

    /// The debug agent next to the test binary links the Swift runtime: skipped for remote hosts
    /// with that reason, fine for this machine.
    @Test func agentLinkingTheSwiftRuntimeIsSkippedForRemoteHosts() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let debugAgent = repo + "/.build/debug/drover-agent"
        guard LocalFile.exists(debugAgent) else {
            Issue.record("no debug build at \(debugAgent): run swift build first")
            return
        }
        let binary = try #require(try AgentBinary.inspect(debugAgent))
        #expect(binary.linkage?.swiftRuntime.contains("libswiftCore.so") == true)
        let why = try #require(binary.unfit(platform: binary.platform, glibc: "2.99"))
        #expect(why.contains("links the Swift runtime dynamically"), "\(why)")
        #expect(binary.unfit(platform: binary.platform, glibc: "2.36", sameMachine: true) == nil)
    }

    /// The agent `scripts/install` puts in the catalog has no interpreter and no shared library.
    @Test func installedAgentIsFullyStatic() throws {
        let path = AgentCatalog.folder + "/linux-x86_64/drover-agent"
        guard LocalFile.exists(path) else {
            if ProcessInfo.processInfo.environment["DROVER_REQUIRE_TESTBED"] == "1" {
                Issue.record("no installed agent at \(path) (scripts/test runs scripts/install first)")
            } else {
                Issue.record("skipped for want of an installed agent: run scripts/install, then this test")
            }
            return
        }
        let binary = try #require(try AgentBinary.inspect(path))
        let linkage = try #require(binary.linkage)
        #expect(linkage.interpreter == nil, "PT_INTERP \(linkage.interpreter ?? "")")
        #expect(linkage.needed.isEmpty, "DT_NEEDED \(linkage.needed)")
        #expect(linkage.isStatic)
        #expect(binary.unfit(platform: "linux-x86_64", glibc: "2.17") == nil)
        #expect(binary.unfit(platform: "linux-x86_64", glibc: nil) == nil, "a static agent runs on a musl host too")
        #expect(binary.size <= 10 << 20, "stripped static agent is \(binary.size) bytes (aim ≤ 10 MiB)")
    }
}
