import DroverCoordinator
import DroverCore
import Foundation

/// The server's one journal connection, used by one request at a time (SQLite connections are
/// not shared between threads), and the bell that rings on every commit to the journal.
///
/// Sendable because the connection is reachable only through `Locked`, one caller at a time.
public final class JournalAccess: Sendable {
    private let journal: Locked<Journal>
    /// Rings on every commit by any process (`JournalWatch`): the coordinator's heartbeats,
    /// state changes, this server's own actions.
    public let bell: ChangeBell
    public let state: StateLocation

    public init(_ state: StateLocation) throws {
        let journal = try Journal(state)
        bell = try ChangeBell(JournalWatch(journal))
        self.state = journal.state
        self.journal = Locked(journal)
    }

    /// Runs `body` with the journal, alone.
    public func read<T>(_ body: (Journal) throws -> T) throws -> T {
        try journal.withLock { try body($0) }
    }
}

/// Counts the journal's commits and wakes every waiter on the next one: many streams (one per
/// browser tab) share one `JournalWatch` thread.
public actor ChangeBell {
    private let watch: JournalWatch
    private var version = 0
    private var waiters: [UUID: CheckedContinuation<Int, Never>] = [:]
    private var pump: Task<Void, Never>?

    init(_ watch: JournalWatch) {
        self.watch = watch
    }

    /// Starts listening (once).
    public func start() {
        guard pump == nil else { return }
        let changes = watch.changes
        pump = Task { [weak self] in
            for await _ in changes { await self?.ring() }
        }
    }

    private func ring() {
        version += 1
        let woken = waiters
        waiters.removeAll()
        for c in woken.values { c.resume(returning: version) }
    }

    /// The number of commits seen so far.
    public var current: Int { version }

    /// Returns once the count passes `seen` (at once when it already has), or when the task is cancelled.
    public func next(after seen: Int) async -> Int {
        if version > seen { return version }
        let id = UUID()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { c in
                if Task.isCancelled { c.resume(returning: version) } else { waiters[id] = c }
            }
        } onCancel: {
            Task { await self.cancel(id) }
        }
    }

    private func cancel(_ id: UUID) {
        waiters.removeValue(forKey: id)?.resume(returning: version)
    }

    /// Stops the watch thread.
    public func stop() {
        pump?.cancel()
        watch.stop()
    }
}
