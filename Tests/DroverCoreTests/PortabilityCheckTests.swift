import DroverCore
import Foundation
import Testing

/// `scripts/portability-check` keeps Linux-only names out of the code macOS compiles too.
@Suite("Portability check")
struct PortabilityCheckTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let script = repo + "/scripts/portability-check"

    @Test func sharedSourcesPass() throws {
        let r = try ChildProcess.run(["/bin/bash", Self.script, Self.repo + "/Sources"], timeout: 60)
        #expect(r.status == 0, "\(r.stdoutText)\(r.stderrText)")
    }

    @Test func aPlantedLinuxOnlyNameFails() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-port-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            import Glibc
            func modified(_ st: stat) -> Int { st.st_mtim.tv_sec }
            #if os(Linux)
            func fine(_ st: stat) -> Int { st.st_mtim.tv_sec }
            #endif
            """.write(toFile: dir + "/Planted.swift", atomically: true, encoding: .utf8)
        try "extension X { func m(_ st: stat) -> Int { st.st_mtim.tv_sec } }\n".write(toFile: dir + "/Times+Linux.swift", atomically: true, encoding: .utf8)
        let r = try ChildProcess.run(["/bin/bash", Self.script, dir], timeout: 60)
        #expect(r.status == 1)
        #expect(r.stdoutText.contains("Planted.swift:2: Linux-only `st_mtim`"), "\(r.stdoutText)")
        #expect(!r.stdoutText.contains("Planted.swift:4"), "a use under #if os(Linux) is allowed")
        #expect(!r.stdoutText.contains("Times+Linux.swift"), "+Linux files are platform code")
    }
}
