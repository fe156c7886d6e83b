import DroverCore
import Foundation
import Testing
@testable import DroverAgent

/// The shim's snapshot rule on a local folder (docs/checkpoints.md): matching per path
/// component, no symlinks, nothing unchanged taken twice, and never a file that moved while
/// it was copied.
@Suite("Checkpoint snapshots")
struct SnapshotTests {
    let root: String

    init() throws {
        root = NSTemporaryDirectory() + "drover-snapshot-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        try FileManager.default.createDirectory(atPath: root + "/work/state/deep", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/checkpoints", withIntermediateDirectories: true)
    }

    func write(_ rel: String, _ text: String) throws {
        try text.write(toFile: root + "/work/" + rel, atomically: true, encoding: .utf8)
    }

    func snapshotter() -> Snapshotter {
        Snapshotter(globs: ["progress.json", "state/*.sobj"], workdir: root + "/work", folder: root + "/checkpoints", job: "j", attempt: 1)
    }

    @Test func takesMatchingFilesOnceAndNotThroughSymlinks() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("progress.json", "7")
        try write("state/a.sobj", "AAAA")
        try write("state/deep/b.sobj", "not matched: one component too deep")
        try write("other.txt", "not matched")
        try FileManager.default.createSymbolicLink(atPath: root + "/work/state/link.sobj", withDestinationPath: "/etc/passwd")
        var s = snapshotter()
        #expect(s.matchingFiles() == ["progress.json", "state/a.sobj"])
        #expect(s.take(reason: "interval") == .taken(1))
        let node = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: root + "/checkpoints/1/manifest.json"))))
        let manifest = try #require(CheckpointEvent(node))
        #expect(manifest.files.map(\.path) == ["progress.json", "state/a.sobj"])
        #expect(manifest.files[1].sha256 == hexString(SHA256.hash(Array("AAAA".utf8))) && manifest.files[1].size == 4)
        #expect(try String(contentsOfFile: root + "/checkpoints/1/files/state/a.sobj", encoding: .utf8) == "AAAA")
        #expect(s.take(reason: "interval") == .unchanged, "nothing changed: no second snapshot")
        try write("progress.json", "8")
        #expect(s.take(reason: "interval") == .taken(2))
        try write("progress.json", "9")
        #expect(s.take(reason: "end") == .taken(3))
        #expect(Set(listDirectory(root + "/checkpoints")) == ["2", "3"], "only the newest \(Snapshotter.kept) are kept on the host")
    }

    @Test func neverTakesAFileThatIsBeingWritten() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("progress.json", "1")
        // A job rewriting state/big.sobj in place, without a rename, while it is copied.
        let big = root + "/work/state/big.sobj"
        _ = FileManager.default.createFile(atPath: big, contents: Data(repeating: 0x61, count: 1 << 20))
        let writing = Locked(true)
        let writer = Thread {
            let fd = open(big, O_WRONLY)
            defer { close(fd) }
            let chunk = [UInt8](repeating: 0x62, count: 512)
            var offset: off_t = 0
            while writing.withLock({ $0 }) {
                _ = chunk.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, offset) }
                offset = (offset + 512) % (1 << 20)
            }
        }
        writer.start()
        var s = snapshotter()
        var outcomes: [Snapshotter.Outcome] = []
        for _ in 0..<3 { outcomes.append(s.take(reason: "interval")) }
        writing.withLock { $0 = false }
        #expect(outcomes.allSatisfy { $0 == .busy("state/big.sobj") }, "\(outcomes)")
        #expect(listDirectory(root + "/checkpoints").isEmpty, "no snapshot and no leftover .tmp folder")
        // Written the safe way (a temporary file renamed over it), it is taken whole.
        try write("state/big.sobj", "final")
        #expect(s.take(reason: "end") == .taken(1))
        #expect(try String(contentsOfFile: root + "/checkpoints/1/files/state/big.sobj", encoding: .utf8) == "final")
    }
}
