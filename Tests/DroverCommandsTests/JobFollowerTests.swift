import DroverCore
import DroverInventory
import Foundation
import DroverTestSupport
import Testing
@testable import DroverCommands
@testable import DroverCoordinator

/// A state directory in a fresh temporary folder; `remove()` deletes the folder.
final class TempState {
    let base: String
    let state: StateLocation

    init() {
        base = FileManager.default.temporaryDirectory.appendingPathComponent("drover-cmd-\(UUID().uuidString)").path
        state = StateLocation(explicit: base + "/state")
    }

    func remove() { try? FileManager.default.removeItem(atPath: base) }
}

/// The followers sleep until the coordinator (here: a second connection) commits.
@Suite("Job follower", .ownThread)
struct JobFollowerTests {
    @Test func waitFinalSleepsBetweenCommitsAndReturnsPromptlyAfterTheEnd() async throws {
        let t = TempState()
        defer { t.remove() }
        let journal = try Journal(t.state)
        let id = try journal.submit(JobRequest(argv: ["sleep", "1"]))
        let follower = try JobFollower(journal: journal, inventory: Inventory(source: .embeddedDefault, hosts: []))
        let readsBefore = journal.db.queries
        // The job's life as the follower sees it: dispatched after 0.5 s, ended after 1 s.
        let coordinator = ownThreadTask { [state = t.state] in
            let writer = try Journal(state)
            try await Task.sleep(for: .milliseconds(500))
            try writer.db.run("UPDATE jobs SET state='dispatched' WHERE id=?", .int(Int64(id)))
            try await Task.sleep(for: .milliseconds(500))
            try Self.finish(id, in: writer)
            return Date()
        }
        let jobs = try await follower.waitFinal([id], timeout: 30)
        let returned = Date()
        let ended = try await coordinator.value
        #expect(jobs.map(\.state) == [.succeeded])
        #expect(returned.timeIntervalSince(ended) < 30, "returned \(returned.timeIntervalSince(ended)) s after the end was committed")
        // One read at the start and one per commit (a stray wake-up may add one): the old
        // 20 ms loop made ~50.
        let reads = journal.db.queries - readsBefore
        #expect(reads <= 4, "\(reads) journal reads for two commits")
    }

    @Test func waitFinalGivesUpAtItsTimeoutWithTheLastRecords() async throws {
        let t = TempState()
        defer { t.remove() }
        let journal = try Journal(t.state)
        let id = try journal.submit(JobRequest(argv: ["true"]))
        let follower = try JobFollower(journal: journal, inventory: Inventory(source: .embeddedDefault, hosts: []))
        let start = Date()
        let jobs = try await follower.waitFinal([id], timeout: 0.3)
        #expect(jobs.map(\.state) == [.queued])
        #expect(Date().timeIntervalSince(start) >= 0.3, "it waited for its timeout")
    }

    @Test func aPokeMakesTheFollowerLookAgainAtOnce() async throws {
        let t = TempState()
        defer { t.remove() }
        let journal = try Journal(t.state)
        let id = try journal.submit(JobRequest(argv: ["true"]))
        let follower = try JobFollower(journal: journal, inventory: Inventory(source: .embeddedDefault, hosts: []))
        let writer = try Journal(t.state)
        let readsBefore = journal.db.queries
        let watch = follower.watch
        let poker = ownThreadTask {
            // Sleeping after its first read: poke. Sleeping again after the re-read: end the job.
            try await Self.untilWaiting(watch)
            watch.poke()
            try await Self.untilWaiting(watch)
        }
        let ender = ownThreadTask { [writer = SendableBox(writer)] in
            try await poker.value
            try Self.finish(id, in: writer.value)
        }
        let jobs = try await follower.waitFinal([id], timeout: 30)
        try await ender.value
        #expect(jobs.map(\.state) == [.succeeded])
        #expect(journal.db.queries - readsBefore == 3, "first read, the poke's, the end's")
    }

    /// Ends job `id` the way the coordinator would be seen from outside: one commit.
    static func finish(_ id: Int, in writer: Journal) throws {
        try writer.db.run("UPDATE jobs SET state='succeeded', ended_at=? WHERE id=?", .double(Date().timeIntervalSince1970), .int(Int64(id)))
    }

    /// Returns once someone waits on `watch` (for at most 10 s).
    static func untilWaiting(_ watch: JournalWatch) async throws {
        let deadline = Date().addingTimeInterval(10)
        while watch.hub.state.withLock({ $0.waiters.isEmpty }) {
            try #require(Date() < deadline, "nobody waited on the watch within 10 s")
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}

/// Hands a value to one other task that alone uses it from then on.
struct SendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// `drover down` waits for the coordinator's lock to go, not on a timer.
@Suite("Coordinator exit", .ownThread)
struct CoordinatorExitTests {
    @Test func waitForExitEndsWhenTheLockIsReleased() async throws {
        let t = TempState()
        defer { t.remove() }
        try t.state.prepare()
        let fd = try #require(try PIDLock.acquire(t.state.lockPath))
        let state = t.state
        let waiting = ownThreadTask { await CoordinatorLauncher.waitForExit(state: state, timeout: 30) }
        try await Task.sleep(for: .milliseconds(300))
        close(fd)  // the holder exits
        let released = Date()
        #expect(await waiting.value)
        #expect(Date().timeIntervalSince(released) < 30, "it returned (a hang fails here)")
        #expect(t.state.runningCoordinator() == nil)
    }

    @Test func waitForExitTimesOutWhileTheLockIsHeld() async throws {
        let t = TempState()
        defer { t.remove() }
        try t.state.prepare()
        let fd = try #require(try PIDLock.acquire(t.state.lockPath))
        defer { close(fd) }  // lets the waiting thread finish
        #expect(await CoordinatorLauncher.waitForExit(state: t.state, timeout: 0.3) == false)
        #expect(t.state.runningCoordinator() != nil)
    }
}
