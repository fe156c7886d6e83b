import Foundation
import DroverCore
import DroverTestSupport
import Testing
@testable import DroverCoordinator

/// Two connections on one temporary state folder: one commits, a watch on the other sleeps
/// until it does. Timeouts are deadlines for the case where a wake-up never comes.
@Suite("Journal watch", .ownThread)
struct JournalWatchTests {
    /// The native mechanism, and the polling fallback (which must wake too, only later).
    static let kinds: [Double?] = [nil, 0.05]

    @Test(arguments: kinds) func aCommitOnAnotherConnectionWakesTheWatch(polling: Double?) async throws {
        let t = TempState()
        defer { t.remove() }
        let reader = try Journal(t.state)
        let writer = try Journal(t.state)
        let watch = try JournalWatch(t.state, pollingEvery: polling)
        defer { watch.stop() }
        #expect(try reader.jobs().isEmpty)
        let waiting = ownThreadTask { await watch.wait(timeout: 10) }
        let id = try writer.submit(JobRequest(argv: ["true"]))
        // `.changed`, not `.timedOut`: the commit woke it (how fast is the benchmark's business).
        #expect(await waiting.value == .changed)
        #expect(try reader.job(id)?.state == .queued)
    }

    /// The coordinator's watch (`doorbellOnly`) wakes for a command's commit, which rings
    /// `STATE/wake`, and sleeps through the commits of its own journal, which does not ring.
    @Test(arguments: kinds) func theCoordinatorsWatchWakesForCommandsAndNotForItsOwnCommits(polling: Double?) async throws {
        let t = TempState()
        defer { t.remove() }
        let own = try Journal(t.state, ringsCoordinator: false)
        let command = try Journal(t.state)
        let watch = try JournalWatch(t.state, pollingEvery: polling, safetyInterval: 30, doorbellOnly: true)
        defer { watch.stop() }
        _ = try own.submit(JobRequest(argv: ["true"]))
        _ = try own.submit(JobRequest(argv: ["true"]))
        #expect(await watch.wait(timeout: 0.6) == .timedOut, "the coordinator's own commits woke it")
        #expect(watch.commitsSeen == 0)
        let waiting = ownThreadTask { await watch.wait(timeout: 10) }
        let id = try command.submit(JobRequest(argv: ["true"]))
        #expect(await waiting.value == .changed, "a command's commit did not ring the coordinator")
        #expect(try own.job(id)?.state == .queued)
    }

    @Test func nothingWakesItWhenNothingCommits() async throws {
        let t = TempState()
        defer { t.remove() }
        let journal = try Journal(t.state)
        _ = try journal.submit(JobRequest(argv: ["true"]))
        // A short safety interval: the re-checks it causes must not pass for commits.
        let watch = try JournalWatch(t.state, safetyInterval: 0.05)
        defer { watch.stop() }
        // Reads, and a write in the folder that is not a commit (the coordinator's log).
        _ = try journal.jobs()
        _ = try journal.events()
        _ = FileManager.default.createFile(atPath: t.state.logPath, contents: Data("started\n".utf8))
        #expect(await watch.wait(timeout: 0.6) == .timedOut)
        #expect(watch.commitsSeen == 0)
        #expect(watch.checks >= 3, "the safety re-checks did not run (\(watch.checks) checks)")
    }

    @Test func aClientIsNotWokenByTheCoordinatorsOtherFiles() async throws {
        let t = TempState()
        defer { t.remove() }
        let journal = try Journal(t.state)
        _ = try journal.submit(JobRequest(argv: ["true"]))
        // No safety re-check within the test: any check is a wake-up by a file event.
        let watch = try JournalWatch(t.state, safetyInterval: 60)
        defer { watch.stop() }
        // What the coordinator rewrites beside the journal: its heap figure (replaced by a
        // rename every 5 s) and its log.
        for i in 0..<20 {
            try AtomicFile.write(Array("{\"heap_in_use\":\(i)}\n".utf8), to: t.state.heapPath, durable: false)
        }
        _ = FileManager.default.createFile(atPath: t.state.logPath, contents: Data("started\n".utf8))
        #expect(await watch.wait(timeout: 0.5) == .timedOut)
        #expect(watch.checks == 0, "the watch woke \(watch.checks) time(s) for files that are not the journal")
        // …and still wakes for a commit.
        _ = try journal.submit(JobRequest(argv: ["true"]))
        #expect(await watch.wait(timeout: 10) == .changed)
    }

    @Test func aTimeoutFiresOnTimeWhileEveryPoolThreadIsBlocked() async throws {
        let t = TempState()
        defer { t.remove() }
        _ = try Journal(t.state)
        let watch = try JournalWatch(t.state, safetyInterval: 60)
        defer { watch.stop() }
        let pool = PoolBlocker(priority: Task.currentPriority)
        let start = Date()
        let wake = await watch.wait(timeout: 0.3)
        let took = Date().timeIntervalSince(start)
        await pool.finish()
        #expect(wake == .timedOut)
        // A timer task waited for a pool thread until the blockers let go (20 s).
        #expect(took < 10, "a 0.3 s timeout fired after \(took) s")
    }

    @Test func aCommitBeforeTheWaitIsKeptForIt() async throws {
        let t = TempState()
        defer { t.remove() }
        let writer = try Journal(t.state)
        let watch = try JournalWatch(t.state)
        defer { watch.stop() }
        _ = try writer.submit(JobRequest(argv: ["true"]))
        // No waiter yet: the wake-up waits for the next wait, however late it comes.
        let seen = Date().addingTimeInterval(10)
        while watch.commitsSeen == 0, Date() < seen { try await Task.sleep(for: .milliseconds(5)) }
        #expect(watch.commitsSeen == 1)
        #expect(await watch.wait(timeout: 0) == .changed)
        #expect(await watch.wait(timeout: 0.2) == .timedOut)
    }

    @Test func everyCommitWakesItAcrossCheckpointsThatRestartTheWAL() async throws {
        let t = TempState()
        defer { t.remove() }
        let writer = try Journal(t.state)
        let watch = try JournalWatch(t.state)
        defer { watch.stop() }
        for round in 0..<12 {
            if round % 3 == 2 { try writer.db.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
            _ = try writer.submit(JobRequest(argv: ["true"]))
            #expect(await watch.wait(timeout: 10) == .changed, "round \(round)")
        }
    }

    @Test func waitBlockingWakesOnACommitAndTimesOutWithout() throws {
        let t = TempState()
        defer { t.remove() }
        _ = try Journal(t.state)
        let watch = try JournalWatch(t.state)
        defer { watch.stop() }
        #expect(watch.waitBlocking(timeout: 0.1) == .timedOut)
        let state = t.state
        let commit = Thread { _ = try? Journal(state).submit(JobRequest(argv: ["true"])) }
        commit.start()
        #expect(watch.waitBlocking(timeout: 10) == .changed)
    }

    @Test func pokeStopAndCancelEndWaits() async throws {
        let t = TempState()
        defer { t.remove() }
        _ = try Journal(t.state)
        let watch = try JournalWatch(t.state)
        let poked = ownThreadTask { await watch.wait(timeout: 10) }
        try await waitUntil { watch.hub.state.withLock { !$0.waiters.isEmpty } }
        watch.poke()
        #expect(await poked.value == .poked)

        let cancelled = ownThreadTask { await watch.wait(timeout: 10) }
        cancelled.cancel()
        #expect(await cancelled.value == .cancelled)

        let stopped = ownThreadTask { await watch.wait(timeout: nil) }
        try await waitUntil { watch.hub.state.withLock { !$0.waiters.isEmpty } }
        watch.stop()
        #expect(await stopped.value == .stopped)
        #expect(await watch.wait(timeout: 10) == .stopped)
        #expect(watch.hub.state.withLock { $0.open.isEmpty && $0.early.isEmpty })
    }

    @Test func changesStreamYieldsPerCommitAndEndsAtStop() async throws {
        let t = TempState()
        defer { t.remove() }
        let writer = try Journal(t.state)
        let watch = try JournalWatch(t.state)
        var iterator = watch.changes.makeAsyncIterator()
        _ = try writer.submit(JobRequest(argv: ["true"]))
        #expect(await iterator.next() != nil)
        watch.stop()
        #expect(await iterator.next() == nil)
    }

    @Test func refusesAStateFolderWithoutJournal() {
        let t = TempState()
        defer { t.remove() }
        #expect(throws: JournalWatchError.self) { try JournalWatch(t.state) }
    }

    /// Polls a condition of the test itself (not of the code under test) for at most 10 s.
    func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = Date().addingTimeInterval(10)
        while !condition() {
            try #require(Date() < deadline, "condition not met within 10 s")
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}
