import Foundation
import Testing
@testable import DroverCore

/// Each test runs against the platform's mechanism (inotify / kqueue) and the polling fallback.
@Suite("File watch")
struct FileWatchTests {
    static let kinds = ["native", "polling"]

    func make(_ kind: String) -> FileWatch {
        kind == "native" ? FileWatch() : FileWatch(pollingEvery: 0.05)
    }

    func folder() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-watch-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Waits until `path` is reported, for at most 5 s (a change the mechanism misses fails here).
    func awaitChange(_ w: FileWatch, _ path: String) -> Bool {
        let end = Date().addingTimeInterval(5)
        while Date() < end {
            if w.wait(timeout: 0.5).paths.contains(path) { return true }
        }
        return false
    }

    @Test(arguments: kinds) func seesAFileCreatedInAFolder(kind: String) throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = make(kind)
        #expect(w.watch(dir))
        try AtomicFile.write(Array("x".utf8), to: dir + "/cmd.json")
        #expect(awaitChange(w, dir))
    }

    @Test(arguments: kinds) func seesAnAppendToAFile(kind: String) throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/events.log"
        #expect(FileManager.default.createFile(atPath: log, contents: Data("one\n".utf8)))
        let w = make(kind)
        #expect(w.watch(log))
        let h = try #require(FileHandle(forWritingAtPath: log))
        h.seekToEndOfFile()
        h.write(Data("two\n".utf8))
        try h.close()
        #expect(awaitChange(w, log))
    }

    @Test(arguments: kinds) func seesAFileReplacedByRenameThroughItsFolder(kind: String) throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try AtomicFile.write(Array("1".utf8), to: dir + "/heartbeat")
        let w = make(kind)
        #expect(w.watch(dir))
        try AtomicFile.write(Array("2".utf8), to: dir + "/heartbeat")
        #expect(awaitChange(w, dir))
    }

    @Test(arguments: kinds) func stayAsleepWhenNothingChanges(kind: String) throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = make(kind)
        #expect(w.watch(dir))
        _ = LocalFile.exists(dir + "/nothing")  // looking wakes no one
        let wake = w.wait(timeout: 0.2)
        #expect(wake.timedOut, "woke with \(wake)")
    }

    @Test(arguments: kinds) func wakesOnAReadableDescriptor(kind: String) throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let w = make(kind)
        w.watch(descriptor: fds[0])
        #expect(write(fds[1], "x", 1) == 1)
        let wake = w.wait(timeout: 5)
        #expect(wake.descriptors == [fds[0]])
    }

    @Test(arguments: kinds) func aFolderSleepsThroughWritesToItsFiles(kind: String) throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/agent.log"
        #expect(FileManager.default.createFile(atPath: log, contents: Data("one\n".utf8)))
        let w = make(kind)
        #expect(w.watch(dir))
        let h = try #require(FileHandle(forWritingAtPath: log))
        h.seekToEndOfFile()
        h.write(Data("two\n".utf8))
        try h.close()
        let wake = w.wait(timeout: 0.3)
        #expect(wake.timedOut, "an append to a file in the folder woke it: \(wake)")
    }

    @Test(arguments: kinds) func entriesLimitWhatAFolderReports(kind: String) throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = make(kind)
        #expect(w.watch(dir, entries: ["stop"]))
        #if os(Linux)
        // Another entry replaced (as the heartbeat is, every beat) does not end the wait.
        try AtomicFile.write(Array("beat".utf8), to: dir + "/heartbeat")
        let start = Date()
        let quiet = w.wait(timeout: 0.3)
        #expect(quiet.timedOut, "woke for an entry not asked about: \(quiet)")
        #expect(Date().timeIntervalSince(start) >= 0.29, "the wait ended early")
        #endif
        try AtomicFile.write(Array("stop".utf8), to: dir + "/stop")
        #expect(awaitChange(w, dir))
    }

    @Test(arguments: kinds) func aRemovedFileIsReportedAndNoLongerWatched(kind: String) throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/lease"
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        let w = make(kind)
        #expect(w.watch(file))
        #expect(unlink(file) == 0)
        #expect(awaitChange(w, file))
        #expect(!w.isWatching(file))
    }

    @Test(arguments: kinds) func aWaitWithNothingToReportLastsItsTimeout(kind: String) throws {
        let w = make(kind)
        let start = Date()
        let wake = w.wait(timeout: 0.25)
        #expect(wake.timedOut)
        #expect(Date().timeIntervalSince(start) >= 0.24, "the polling fallback must not return at its first scan")
        #expect(w.wakeups == 1)
    }

    @Test func cannotWatchWhatDoesNotExist() {
        #expect(!FileWatch().watch("/nonexistent-drover-dir/x"))
        #expect(!FileWatch(pollingEvery: 0.1).watch("/nonexistent-drover-dir/x"))
    }

    @Test func usesTheKernelMechanism() {
        #if os(Linux)
        #expect(FileWatch().mechanism == .inotify)
        #elseif canImport(Darwin)
        #expect(FileWatch().mechanism == .kqueue)
        #endif
    }
}
