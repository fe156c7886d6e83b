import DroverCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The thread behind a `JournalWatch`: blocks in `FileWatch.wait` on the state folder, the
/// WAL file (or, for the coordinator, the doorbell file other processes touch after their
/// commits) and a wake-up pipe, and tells the `WakeHub` when `data_version` moved.
final class JournalWatchThread: Sendable {
    /// Re-checks after a file event that showed no commit yet: the committer writes the WAL
    /// first and publishes the commit in the WAL index (shared memory, no file event) just after.
    static let settleDelays = [0.002, 0.01, 0.05, 0.25]

    private let folder: String
    /// The WAL, or the doorbell file.
    private let watched: String
    private let safetyInterval: Double
    private let hub: WakeHub
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let stopping = Locked(false)
    private let exited = DispatchSemaphore(value: 0)
    // Used by the thread alone once it started (set up by `init` before it starts; released
    // when it ends, closing them): confined to that thread, which the compiler cannot see.
    nonisolated(unsafe) private var files: FileWatch?
    nonisolated(unsafe) private var db: SQLiteDatabase?
    nonisolated(unsafe) private var version: Int64 = 0

    init(folder: String, journal: String, doorbell: String?, files: FileWatch, db: SQLiteDatabase, safetyInterval: Double, hub: WakeHub) throws {
        self.folder = folder
        self.watched = doorbell ?? journal + "-wal"
        self.safetyInterval = max(0.01, safetyInterval)
        self.hub = hub
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw JournalWatchError(path: journal, problem: "cannot create a pipe: \(SystemError.current("pipe"))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        (wakeRead, wakeWrite) = (fds[0], fds[1])
        // The doorbell exists before the watches start, so making it is no event; then the
        // folder reports only that entry (replaced or removed), not the WAL's coming and going.
        if let doorbell, !LocalFile.exists(doorbell) {
            let fd = open(doorbell, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) }
        }
        // The folder reports only the entries that matter here (the doorbell; else the journal
        // and its WAL), not the coordinator's log or heap figure coming and going beside them.
        let name = { (path: String) in String(path.split(separator: "/").last ?? "") }
        let entries: Set<String> = doorbell.map { [name($0)] } ?? [name(journal), name(journal) + "-wal"]
        let folderWatched = files.watch(folder, entries: entries)
        guard folderWatched else {
            close(wakeRead)
            close(wakeWrite)
            throw JournalWatchError(path: journal, problem: "cannot watch its folder \(folder)")
        }
        files.watch(descriptor: wakeRead)
        self.files = files
        self.db = db
        watchFile()
        // The baseline after the watches are in place: a commit from now on is either in it
        // or produces an event.
        version = try db.dataVersion()
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "drover-journal-watch"
        thread.start()
    }

    /// Makes the thread exit and waits (a second at most) until it has.
    func stop() {
        let first = stopping.withLock { s in
            defer { s = true }
            return !s
        }
        guard first else { return }
        _ = write(wakeWrite, "x", 1)
        if exited.wait(timeout: .now() + 1) == .success {
            close(wakeRead)
            close(wakeWrite)
        }
        // Else the thread is stuck (a busy journal): it closes nothing of the pipe, so no
        // descriptor number is reused under it; the two descriptors leak.
    }

    private func run() {
        var settle: Int?
        while !stopping.withLock({ $0 }), let files {
            let wake = files.wait(timeout: settle.map { Self.settleDelays[$0] } ?? safetyInterval)
            if wake.descriptors.contains(wakeRead) { drainPipe() }
            if stopping.withLock({ $0 }) { break }
            let fileEvent = !wake.paths.isEmpty || wake.overflowed
            if fileEvent { watchFile() }
            if check() {
                settle = nil
                hub.counters.withLock { $0.commits += 1 }
                hub.fire(.changed)
            } else if fileEvent {
                settle = 0
            } else if let k = settle {
                settle = k + 1 < Self.settleDelays.count ? k + 1 : nil
            }
        }
        files = nil
        db = nil
        exited.signal()
    }

    /// Whether `data_version` moved since the last check.
    private func check() -> Bool {
        hub.counters.withLock { $0.checks += 1 }
        guard let v = try? db?.dataVersion(), v != version else { return false }
        version = v
        return true
    }

    /// Watches the WAL (or doorbell) file when it exists and is not watched (the WAL is
    /// created on the first write after the last connection closed, which the folder's
    /// watch reports).
    private func watchFile() {
        guard let files, !files.isWatching(watched) else { return }
        files.watch(watched)
    }

    private func drainPipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while buffer.withUnsafeMutableBytes({ read(wakeRead, $0.baseAddress, $0.count) }) > 0 {}
    }
}
