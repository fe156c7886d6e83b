import DroverCore
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
        #expect(r.begin(job: 1, attempt: 1, host: "h1"))
        #expect(!r.begin(job: 1, attempt: 1, host: "h1"))
        r.applyingSeq = 45
        #expect(r.begin(job: 2, attempt: 1, host: "h1"))
        r.applyingSeq = 7
        #expect(r.begin(job: 3, attempt: 2, host: "h2"))
        #expect(r.collectedSeq("h1", applied: 50) == 39)
        #expect(r.collectedSeq("h2", applied: 50) == 6)
        #expect(r.collectedSeq("h3", applied: 50) == 50)
        r.end(job: 1, attempt: 1)
        #expect(r.collectedSeq("h1", applied: 50) == 44)
        r.end(job: 2, attempt: 1)
        #expect(r.collectedSeq("h1", applied: 50) == 50)
        // After a restart the final event is not known (0): nothing is collected on that host.
        r.applyingSeq = 0
        #expect(r.begin(job: 4, attempt: 1, host: "h1"))
        #expect(r.collectedSeq("h1", applied: 50) == 0)
    }

    @Test func collectionsOfARolledBackTransactionAreNotUnderWay() {
        var r = ResultCollection()
        #expect(r.begin(job: 1, attempt: 1, host: "h1"))
        r.pending.append((host: "h1", collection: HostLink.Collection(job: 1, attempt: 1, attemptDirectory: "/a", workdir: "/a/work", outputs: [], destination: "/r")))
        r.abandonPending()
        #expect(!r.isCollecting(job: 1, attempt: 1))
        #expect(r.takePending().isEmpty)
        #expect(r.begin(job: 1, attempt: 1, host: "h1"))
    }
}
