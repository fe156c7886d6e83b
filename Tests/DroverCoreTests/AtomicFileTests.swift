import Foundation
import Testing
@testable import DroverCore

@Suite("Atomic files")
struct AtomicFileTests {
    @Test func replacesContentWithMode0600() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-atomic-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/state.json"
        try AtomicFile.write(Array("one".utf8), to: path)
        try AtomicFile.write(Array("two".utf8), to: path)
        #expect(try LocalFile.read(path) == Array("two".utf8))
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["state.json"])
    }

    @Test func reportsPathAndErrno() {
        do {
            try AtomicFile.write([1], to: "/nonexistent-drover-dir/x")
            Issue.record("expected an error")
        } catch {
            #expect(error.errno == ENOENT)
            #expect(error.description.contains("/nonexistent-drover-dir"))
        }
    }
}
