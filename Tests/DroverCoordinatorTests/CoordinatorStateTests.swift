import DroverCore
import DroverProtocol
import Foundation
import Testing
@testable import DroverCoordinator

/// The coordinator's per-concern state (`HeartbeatLog`, `ResultCollection`, …) decides
/// without a journal or a host: these check those decisions.
@Suite("Coordinator state")
struct CoordinatorStateTests {
    func beat(_ text: String) throws -> JSONNode { try JSONParser.parse(text) }

    @Test func aBeatThatSaysNothingNewWaitsForTheFlushAndANewOneDoesNot() throws {
        var log = HeartbeatLog()
        let key = HeartbeatLog.key(try beat(#"{"seq":1,"version":"1.0","build":"abc","cpus":4,"machine_id":"m","coordinators":["x"]}"#))
        #expect(!log.isRoutine("h1", key: key, hostUp: true))
        log.wrote("h1", key: key, at: 10)
        #expect(log.isRoutine("h1", key: key, hostUp: true))
        // Only the time and sequence changed: still routine; a host that is not up is never routine.
        #expect(HeartbeatLog.key(try beat(#"{"seq":9,"time":5,"version":"1.0","build":"abc","cpus":4,"machine_id":"m","coordinators":["x"]}"#)) == key)
        #expect(!log.isRoutine("h1", key: key, hostUp: false))
        let newBuild = HeartbeatLog.key(try beat(#"{"seq":2,"version":"1.0","build":"def","cpus":4,"machine_id":"m","coordinators":["x"]}"#))
        #expect(!log.isRoutine("h1", key: newBuild, hostUp: true))
        let anotherCoordinator = HeartbeatLog.key(try beat(#"{"seq":2,"version":"1.0","build":"abc","cpus":4,"machine_id":"m","coordinators":["x","y"]}"#))
        #expect(!log.isRoutine("h1", key: anotherCoordinator, hostUp: true))
    }

    @Test func heldBeatsAreFlushedOneIntervalAfterTheFirst() {
        var log = HeartbeatLog()
        log.hold(Journal.Beat(seq: 1), host: "h1", at: 100)
        log.hold(Journal.Beat(seq: 2), host: "h1", at: 101)
        log.hold(Journal.Beat(seq: 1), host: "h2", at: 102)
        #expect(log.flushAt == 100 + HeartbeatLog.recordInterval)
        #expect(log.pending["h1"]?.seq == 2)
        log.wrote("h1", key: "k", at: 103)
        #expect(log.pending["h1"] == nil)
        #expect(log.pending["h2"]?.seq == 1)
    }

    @Test func theCollectedSequenceStaysBelowEveryAttemptStillBeingFetched() {
        var r = ResultCollection()
        r.applyingSeq = 40
        let v1 = r.begin(job: 1, attempt: 1, host: "h1")
        #expect(v1)
        let v2 = r.begin(job: 1, attempt: 1, host: "h1")
        #expect(!v2)
        r.applyingSeq = 45
        let v3 = r.begin(job: 2, attempt: 1, host: "h1")
        #expect(v3)
        r.applyingSeq = 7
        let v4 = r.begin(job: 3, attempt: 2, host: "h2")
        #expect(v4)
        let v5 = r.collectedSeq("h1", applied: 50)
        #expect(v5 == 39)
        let v6 = r.collectedSeq("h2", applied: 50)
        #expect(v6 == 6)
        let v7 = r.collectedSeq("h3", applied: 50)
        #expect(v7 == 50)
        r.end(job: 1, attempt: 1)
        let v8 = r.collectedSeq("h1", applied: 50)
        #expect(v8 == 44)
        r.end(job: 2, attempt: 1)
        let v9 = r.collectedSeq("h1", applied: 50)
        #expect(v9 == 50)
        // After a restart the final event is not known (0): nothing is collected on that host.
        r.applyingSeq = 0
        let v10 = r.begin(job: 4, attempt: 1, host: "h1")
        #expect(v10)
        let v11 = r.collectedSeq("h1", applied: 50)
        #expect(v11 == 0)
    }

    @Test func collectionsOfARolledBackTransactionAreNotUnderWay() {
        var r = ResultCollection()
        let v12 = r.begin(job: 1, attempt: 1, host: "h1")
        #expect(v12)
        r.pending.append((host: "h1", collection: HostLink.Collection(job: 1, attempt: 1, attemptDirectory: "/a", workdir: "/a/work", outputs: [], destination: "/r")))
        r.abandonPending()
        #expect(!r.isCollecting(job: 1, attempt: 1))
        let v13 = r.takePending()
        #expect(v13.isEmpty)
        let v14 = r.begin(job: 1, attempt: 1, host: "h1")
        #expect(v14)
    }

    func pull(_ job: Int) -> CheckpointPull {
        CheckpointPull(job: job, event: CheckpointEvent(job: "c-\(job)", attempt: 1, index: 1, takenAt: 0, reason: "end", files: []),
                       remoteFolder: "/r", store: "/s")
    }

    @Test func aJobWaitsForItsSnapshotUntilEveryPullOfItEnded() {
        var c = CheckpointPulls()
        c.add(pull(1), host: "h1")
        c.add(pull(1), host: "h1")
        c.add(pull(2), host: "h2")
        let v15 = c.takePending()
        #expect(v15.map(\.host) == ["h1", "h1", "h2"])
        #expect(c.pending.isEmpty)
        c.ended(job: 1)
        #expect(c.host(pulling: 1) == "h1")
        c.ended(job: 1)
        #expect(c.host(pulling: 1) == nil)
        #expect(c.host(pulling: 2) == "h2")
    }

    @Test func pullsOfARolledBackTransactionAreNotUnderWay() {
        var c = CheckpointPulls()
        c.add(pull(1), host: "h1")
        let v16 = c.takePending()
        #expect(v16.count == 1)
        c.add(pull(1), host: "h1")
        c.abandonPending()
        // The first pull is still under way; the one rolled back is not.
        #expect(c.host(pulling: 1) == "h1")
        c.ended(job: 1)
        #expect(c.host(pulling: 1) == nil)
    }

    @Test func theOutboxIsLookedAtWhenDueAndKeepsTheCoordinatorUpWhileBusy() {
        var o = NotificationOutbox()
        #expect(o.isDue(at: 0))
        #expect(!o.isIdle)
        o.due = nil
        #expect(!o.isDue(at: 1e12))
        #expect(o.isIdle)
        o.lookAgain(by: 50)
        o.lookAgain(by: 70)
        #expect(o.due == 50)
        #expect(!o.isDue(at: 49) && o.isDue(at: 50))
        o.due = nil
        o.delivering.insert(3)
        #expect(!o.isIdle)
    }

    @Test func approvalGatesAreLookedAtWhenNothingIsKnownOrTheirDeadlinePassed() {
        var a = ApprovalClock()
        #expect(a.isDue(at: 0))
        a.due = 100
        #expect(!a.isDue(at: 99.9))
        #expect(a.isDue(at: 100))
    }

    @Test func anInputIsHashedAgainOnlyWhenItChanged() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-hashes-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/in.txt"
        try Data("hello\n".utf8).write(to: URL(fileURLWithPath: path))
        var hashes = InputHashes()
        let first = try hashes.hash(path)
        #expect(first == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        // The cache answers while size and mtime match (even for content it did not read).
        hashes.byPath[path]?.sha256 = "cached"
        let v17 = try hashes.hash(path)
        #expect(v17 == "cached")
        try Data("hello, world\n".utf8).write(to: URL(fileURLWithPath: path))
        let v18 = try hashes.hash(path)
        #expect(v18 != "cached")
        #expect(throws: StagingError.self) { try hashes.hash(dir + "/missing") }
    }

    @Test func theAgendaSaysWhenTheLoopGoesRoundAtOnceAndWhenHousekeepingHasWork() {
        var a = LoopAgenda()
        #expect(a.runsAtOnce && a.housekeepingPending)
        a.schedule = false
        a.dependents = false
        a.batches = false
        a.sagas = false
        a.hosts = false
        #expect(!a.runsAtOnce && !a.housekeepingPending)
        a.requests = true
        #expect(a.runsAtOnce)
        a.hosts = true
        #expect(a.housekeepingPending)
        a.retry(at: 30)
        a.retry(at: 20)
        a.retry(at: 40)
        #expect(a.retryAt == 20)
    }
}
