import DroverCore
import Foundation

/// Sleeps until another connection commits to the journal, without polling it.
///
/// A dedicated thread blocks in `FileWatch.wait` on the state folder and on `journal.db-wal`
/// (a commit writes the WAL; a checkpoint may restart, truncate or delete it, and the folder
/// sees it come back). On each file event the thread asks its own read connection for
/// `PRAGMA data_version`, which changes only when some connection committed: a write that is
/// not a commit (a checkpoint, `coordinator.log`) wakes no waiter. Because the event can
/// arrive a moment before the committer has published the commit in the WAL index, an event
/// without a visible change is re-checked a few times over ~0.3 s; and every
/// `safetyInterval` seconds the thread re-checks even without an event (a file system that
/// reports nothing, the polling fallback).
///
/// Create the watch *before* the first read: a commit that lands between a read and the next
/// `wait` is kept (one pending wake-up), so the usual loop `read; if done break; wait` never
/// sleeps through a change. The commits of every connection count, this process's included
/// (the watch has its own connection).
public final class JournalWatch: Sendable {
    /// Why a wait returned.
    public enum Wake: Sendable, Equatable {
        /// Someone committed to the journal since the last wait returned.
        case changed
        /// `poke()` was called (a signal handler, an output stream that ended…).
        case poked
        /// The timeout passed first.
        case timedOut
        /// The waiting task was cancelled.
        case cancelled
        /// The watch was stopped (or its thread could not go on).
        case stopped
    }

    /// Seconds between re-checks of `data_version` when no file event arrives.
    public static let defaultSafetyInterval = 5.0

    /// The journal file watched.
    public let path: String
    /// How file changes are noticed (inotify, kqueue or the polling fallback).
    public let mechanism: FileWatch.Mechanism
    let hub = WakeHub()
    private let worker: JournalWatchThread

    /// Starts watching the journal of `state` (which must exist). `pollingEvery` forces the
    /// portable polling fallback (tests); `safetyInterval` bounds how long a missed file event
    /// can delay a wake-up. With `doorbellOnly` (the coordinator) it wakes for the commits of
    /// other processes alone, which touch `state.wakePath` (`Journal(ringsCoordinator:)`),
    /// rather than for every write to the WAL, its own included.
    public init(_ state: StateLocation, pollingEvery: Double? = nil, safetyInterval: Double = JournalWatch.defaultSafetyInterval,
                doorbellOnly: Bool = false) throws {
        path = state.journalPath
        guard LocalFile.exists(path) else {
            throw JournalWatchError(path: path, problem: "there is no journal there yet")
        }
        let files = pollingEvery.map { FileWatch(pollingEvery: $0) } ?? FileWatch()
        mechanism = files.mechanism
        let db = try SQLiteDatabase(path: path, create: false)
        worker = try JournalWatchThread(folder: state.path, journal: path, doorbell: doorbellOnly ? state.wakePath : nil, files: files, db: db, safetyInterval: safetyInterval, hub: hub)
        worker.start()
    }

    /// Opens a watch on the journal's state directory.
    public convenience init(_ journal: Journal, safetyInterval: Double = JournalWatch.defaultSafetyInterval) throws {
        try self.init(journal.state, safetyInterval: safetyInterval)
    }

    deinit { stop() }

    /// Waits until a commit, a `poke()`, `timeout` seconds (nil: no limit) or `stop()`.
    /// Returns at once when a commit happened since the last wait returned.
    @discardableResult
    public func wait(timeout: Double?) async -> Wake {
        let id = hub.newID()
        // The timeout fires from a dispatch timer, not a task: a task needs a thread of the
        // cooperative pool (one per core), and while blocking work holds them all a 0.6 s
        // timeout fired after 30 s, once the safety check had reported a commit instead.
        let timer = timeout.map { [hub] t in DispatchWorkItem { hub.resolve(id, .timedOut) } }
        if let timer, let timeout { DispatchQueue.global().asyncAfter(deadline: .now() + max(0, timeout), execute: timer) }
        defer { timer?.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Wake, Never>) in
                hub.register(id) { c.resume(returning: $0) }
            }
        } onCancel: { [hub] in
            hub.resolve(id, .cancelled)
        }
    }

    /// Waits until `deadline` (nil: no limit); `.timedOut` when it has passed already.
    @discardableResult
    public func wait(until deadline: Date?) async -> Wake {
        guard let deadline else { return await wait(timeout: nil) }
        let left = deadline.timeIntervalSinceNow
        return left <= 0 ? .timedOut : await wait(timeout: left)
    }

    /// `wait(timeout:)` for code that is not async: blocks the calling thread.
    @discardableResult
    public func waitBlocking(timeout: Double?) -> Wake {
        let id = hub.newID()
        let done = DispatchSemaphore(value: 0)
        let result = Locked<Wake>(.stopped)
        hub.register(id) { w in
            result.withLock { $0 = w }
            done.signal()
        }
        if let timeout, done.wait(timeout: .now() + max(0, timeout)) == .timedOut {
            // Ends the wait unless a wake-up took it first; either way it signals once more.
            hub.resolve(id, .timedOut)
            done.wait()
        } else if timeout == nil {
            done.wait()
        }
        return result.withLock { $0 }
    }

    /// One wake-up per commit batch, for a `for await` loop (one consumer; ends at `stop()`).
    public var changes: AsyncStream<Void> {
        AsyncStream(bufferingPolicy: .bufferingNewest(1)) { continuation in
            let task = Task { [self] in
                while true {
                    let w = await wait(timeout: nil)
                    if w == .stopped || w == .cancelled { break }
                    continuation.yield()
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Wakes the waiters now (or the next wait, when none waits), as a commit would.
    public func poke() { hub.fire(.poked) }

    /// Ends the watch: current and later waits return `.stopped`; the thread exits and closes
    /// its descriptors and its connection before this returns (within a second).
    public func stop() {
        hub.stop()
        worker.stop()
    }

    /// Commits noticed so far (for tests and diagnostics).
    public var commitsSeen: Int { hub.counters.withLock { $0.commits } }

    /// `data_version` checks the thread made so far (for tests and diagnostics).
    public var checks: Int { hub.counters.withLock { $0.checks } }
}

extension JournalWatch {
    /// `wait(until:)` for loops that read after it: throws `CancellationError` when the task
    /// is cancelled and `JournalWatchError` when the watch was stopped.
    @discardableResult
    public func next(until deadline: Date?) async throws -> Wake {
        let wake = await wait(until: deadline)
        if wake == .cancelled { throw CancellationError() }
        if wake == .stopped { throw JournalWatchError(path: path, problem: "the watch was stopped") }
        return wake
    }

    /// Reads with `read` now and again after each commit (or poke), until `done` accepts
    /// what it read or `deadline` passes; returns the last value read.
    public func reread<T>(until deadline: Date? = nil, _ read: () throws -> T, done: (T) throws -> Bool) async throws -> T {
        while true {
            let value = try read()
            if try done(value) { return value }
            if let deadline, Date() >= deadline { return value }
            try await next(until: deadline)
        }
    }
}

/// A journal watch could not start.
public struct JournalWatchError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var problem: String

    public var description: String { "cannot watch the journal \(path): \(problem)" }
}

/// The waiters of a watch and the wake-up kept for the next one when none waits.
final class WakeHub: Sendable {
    typealias Resume = @Sendable (JournalWatch.Wake) -> Void

    struct State {
        var nextID: UInt64 = 0
        /// Waits begun (`newID`) and not over yet.
        var open: Set<UInt64> = []
        var waiters: [UInt64: Resume] = [:]
        /// Open waits resolved before they registered (a cancel or timeout that won the race).
        var early: [UInt64: JournalWatch.Wake] = [:]
        var pending: JournalWatch.Wake?
        var stopped = false

        /// Takes every waiter out (their waits are over).
        mutating func takeAll() -> [Resume] {
            defer {
                open.subtract(waiters.keys)
                waiters.removeAll()
            }
            return Array(waiters.values)
        }
    }

    struct Counters {
        var commits = 0
        var checks = 0
    }

    let state = Locked(State())
    let counters = Locked(Counters())

    func newID() -> UInt64 {
        state.withLock { s in
            s.nextID += 1
            s.open.insert(s.nextID)
            return s.nextID
        }
    }

    /// Adds a waiter, or calls it at once with the pending wake-up (or `.stopped`).
    func register(_ id: UInt64, _ resume: @escaping Resume) {
        let now: JournalWatch.Wake? = state.withLock { s in
            var now = s.early.removeValue(forKey: id)
            if now == nil, s.stopped { now = .stopped }
            if now == nil, let p = s.pending {
                s.pending = nil
                now = p
            }
            if now == nil { s.waiters[id] = resume } else { s.open.remove(id) }
            return now
        }
        if let now { resume(now) }
    }

    /// Ends one wait (timeout, cancel); nothing when it is over already.
    func resolve(_ id: UInt64, _ wake: JournalWatch.Wake) {
        let resume: Resume? = state.withLock { s in
            if let r = s.waiters.removeValue(forKey: id) {
                s.open.remove(id)
                return r
            }
            if s.open.contains(id), s.early[id] == nil { s.early[id] = wake }
            return nil
        }
        resume?(wake)
    }

    /// Wakes every waiter, or keeps the wake-up for the next one.
    func fire(_ wake: JournalWatch.Wake) {
        let all: [Resume] = state.withLock { s in
            if s.stopped { return [] }
            if s.waiters.isEmpty {
                if s.pending != .changed { s.pending = wake }
                return []
            }
            return s.takeAll()
        }
        for r in all { r(wake) }
    }

    func stop() {
        let all: [Resume] = state.withLock { s in
            s.stopped = true
            return s.takeAll()
        }
        for r in all { r(.stopped) }
    }
}
