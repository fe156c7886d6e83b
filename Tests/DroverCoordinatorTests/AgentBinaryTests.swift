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
}
