import DroverCore
import Foundation
import Testing
@testable import DroverAgent

/// A full disk that lets part of a batch of events through: the whole lines stay with their
/// sequence numbers (a `link` may have sent them to a coordinator already), only a torn line
/// is cut, and the retry writes the rest after them.
@Suite("Event log on a full disk")
struct EventLogFullDiskTests {
    @Test func wholeLinesOfAPartlyWrittenBatchStayAndTheRetryFollowsThem() throws {
        guard getuid() == 0 else {
            print("skipped: EventLogFullDiskTests needs root to mount a small tmpfs")
            return
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("drover-fulllog-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(mount("tmpfs", root, "tmpfs", 0, "size=64k") == 0, "mount tmpfs: \(String(cString: strerror(errno)))")
        defer { umount2(root, Int32(MNT_DETACH)) }
        let dir = StateDirectory(root: root)
        let log = try EventLog(dir: dir)
        // Fill the disk but for three pages (tmpfs frees whole pages).
        let filler = root + "/filler"
        let fd = open(filler, O_WRONLY | O_CREAT, 0o600)
        let chunk = [UInt8](repeating: 0x78, count: 4096)
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == 4096 {}
        close(fd)
        let used = (try? FileManager.default.attributesOfItem(atPath: filler)[.size] as? Int) ?? 0
        _ = truncate(filler, off_t(max(0, used - 3 * 4096)))
        // A batch of 80 events of ~230 bytes: more than the space left.
        let events = (1...80).map { #"{"type":"note","text":"\#(String(repeating: "e", count: 180))\#($0)"}"# }
        var failed = false
        do { try log.append(events, durable: false) } catch { failed = true }
        #expect(failed, "the disk should have been too full for the whole batch")
        let kept = log.lastAppendKept
        #expect(kept > 0 && kept < events.count, "kept \(kept)")
        func lines() throws -> [String] { String(decoding: try LocalFile.read(dir.eventLog), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }
        var text = try lines()
        #expect(text.last == "", "the log ends with a whole line")
        #expect(text.count - 1 == kept)
        #expect(log.nextSeq == kept + 1)
        // Room again: the rest follows with the next sequence numbers, none twice, none missing.
        unlink(filler)
        try log.append(Array(events[kept...]), durable: false)
        text = try lines().filter { !$0.isEmpty }
        let seqs = text.compactMap { try? JSONParser.parse(Array($0.utf8))["seq"]?.intValue }
        #expect(seqs == Array(1...events.count))
    }
}
