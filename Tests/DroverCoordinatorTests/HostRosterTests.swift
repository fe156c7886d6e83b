import DroverCore
import Testing
@testable import DroverCoordinator

/// The roster's decisions are pure: a host's next state, its twins, whether it takes jobs.
@Suite("HostRoster")
struct HostRosterTests {
    func next(_ beat: HostLiveness.State, from old: String, caughtUp: Bool = true, stale: Bool = false) -> String {
        HostRoster.nextState(beat: beat, old: old, caughtUp: caughtUp) { stale }
    }

    @Test func silenceMakesAHostDownAndItStaysDownUntilItBeats() {
        #expect(next(.down, from: "up") == "down")
        #expect(next(.connecting, from: "down") == "down")
        #expect(next(.connecting, from: "untrusted") == "down")
        #expect(next(.connecting, from: "connecting") == "connecting")
    }

    @Test func aHostComingBackReconcilesUntilItsBacklogIsAppliedAndItsStaleAttemptsEnd() {
        #expect(next(.up, from: "down", caughtUp: false) == "reconciling")
        #expect(next(.up, from: "reconciling", caughtUp: false) == "reconciling")
        #expect(next(.up, from: "reconciling", stale: true) == "reconciling")
        #expect(next(.up, from: "reconciling", stale: false) == "up")
        #expect(next(.suspect, from: "connecting", stale: false) == "suspect")
        // A first connection that has not caught up yet stays connecting.
        #expect(next(.up, from: "connecting", caughtUp: false) == "connecting")
    }

    @Test func aHostThatStaysUpIsNeverAskedForStaleAttempts() throws {
        var asked = false
        let state = HostRoster.nextState(beat: .suspect, old: "up", caughtUp: true) { asked = true; return true }
        #expect(state == "suspect")
        #expect(!asked)
        // Not caught up (the link reconnected): it keeps its state until the backlog is applied.
        #expect(next(.up, from: "suspect", caughtUp: false) == "suspect")
    }

    @Test func heartbeatsFeedLivenessAndReportNewCPUsAndANewSystem() throws {
        var roster = HostRoster()
        roster.liveness["h1"] = HostLiveness(deadAfter: 10, since: 0)
        let beat = try JSONParser.parse(#"{"seq":1,"pid":7,"cpus":4,"machine_id":"m1","boot_id":"b1","hostname":"h1"}"#)
        let v1 = roster.observe(beat, host: "h1", at: 1)
        #expect(v1 == .init(cpusChanged: true, identityChanged: true))
        #expect(roster.liveness["h1"]?.state(at: 1) == .up)
        #expect(roster.cpus["h1"] == 4)
        #expect(roster.machineIDs["h1"] == "m1")
        let same = try JSONParser.parse(#"{"seq":2,"pid":7,"cpus":4,"machine_id":"m1","boot_id":"b1","hostname":"h1"}"#)
        let v2 = roster.observe(same, host: "h1", at: 2)
        #expect(v2 == .init())
        let rebooted = try JSONParser.parse(#"{"seq":3,"pid":8,"cpus":8,"machine_id":"m1","boot_id":"b2","hostname":"h1"}"#)
        let v3 = roster.observe(rebooted, host: "h1", at: 3)
        #expect(v3 == .init(cpusChanged: true, identityChanged: true))
        // A line without a sequence is no beat.
        let v4 = roster.observe(try JSONParser.parse(#"{"cpus":16}"#), host: "h1", at: 4)
        #expect(v4 == .init())
        #expect(roster.cpus["h1"] == 8)
    }

    /// h17 in the 20-host soak of session 12: its link reconnected to its live agent, and the
    /// host was declared down 0.7 s later, before a beat came up the new stream.
    @Test func aReconnectToTheLiveAgentCountsItsNewHeartbeatAsLife() {
        var roster = HostRoster()
        roster.liveness["h1"] = HostLiveness(deadAfter: 10, since: 0)
        roster.liveness["h1"]?.observe(seq: 4, pid: 7, interval: 1, at: 1)
        #expect(roster.liveness["h1"]?.state(at: 9) == .suspect)
        var deploy = DeployReport(host: "h1", outcome: .upToDate, agentPID: 7, seconds: 0.1)
        deploy.heartbeatSeq = 9
        roster.observeConnect(deploy, host: "h1", at: 10.5)
        #expect(roster.liveness["h1"]?.state(at: 11.2) == .up)
        #expect(roster.liveness["h1"]?.lastSeq == 9)
        // Another reconnect reading the same beat proves nothing new: down on time.
        roster.observeConnect(deploy, host: "h1", at: 15)
        #expect(roster.liveness["h1"]?.state(at: 20.5) == .down)
        // A report without a heartbeat (an older agent) changes nothing.
        var none = deploy
        none.heartbeatSeq = nil
        roster.observeConnect(none, host: "h1", at: 21)
        #expect(roster.liveness["h1"]?.lastSeq == 9)
    }

    @Test func theLaterOfTwoNamesForOneSystemTakesJobsOnlyWhileTheEarlierCannot() {
        var roster = HostRoster()
        roster.systemKeys = ["a": "k1", "b": "k2", "c": "k1", "d": "k1"]
        let found = roster.sameMachines(in: ["a", "b", "c", "d", "e"])
        #expect(found == ["c": "a", "d": "a"])
        roster.sameMachineAs = found
        roster.hostState = ["a": "up", "b": "up", "c": "up", "d": "suspect"]
        #expect(roster.takesJobs("a"))
        #expect(roster.takesJobs("b"))
        #expect(!roster.takesJobs("c"))
        #expect(!roster.takesJobs("d"))
        #expect(!roster.takesJobs("e"))
        roster.hostState["a"] = "down"
        #expect(roster.takesJobs("c"))
        roster.hostState["a"] = "untrusted"
        #expect(roster.takesJobs("c"))
        roster.hostState["a"] = "reconciling"
        #expect(!roster.takesJobs("c"))
    }

    @Test func aSleepExcusesEveryHostButTheDownAndUntrustedOnes() {
        var roster = HostRoster()
        for h in ["a", "b", "c"] { roster.liveness[h] = HostLiveness(deadAfter: 10, since: 0) }
        roster.hostState = ["a": "up", "b": "down", "c": "suspect"]
        roster.untrusted["c"] = "key changed"
        let v5 = roster.excuse(["a", "b", "c"], at: 100, grace: 5)
        #expect(v5 == ["a"])
        #expect(roster.liveness["a"]?.lastAdvance == 105)
        #expect(roster.liveness["b"]?.lastAdvance == 0)
        #expect(roster.nextLivenessChange(after: 100) == 115)
    }
}
