import DroverCore
import Testing
@testable import DroverProtocol

@Suite("Wire protocol")
struct WireProtocolTests {
    func roundTrip(_ c: AgentCommand) throws -> AgentCommand {
        let node = try JSONParser.parse(Array(c.line.utf8))
        return try AgentCommand.parse(node, file: "test").get()
    }

    @Test func commandsRoundTrip() throws {
        var spec = AttemptSpec(id: AttemptID(job: "c1-7", attempt: 2), argv: ["echo", "a b", "'; rm -rf /"])
        spec.env = ["K": "v=1"]
        spec.timeout = 3.5
        spec.coordinator = "c1"
        let commands: [AgentCommand] = [
            .start(spec),
            .cancel(job: "c1-7", attempt: 2, reason: .stale),
            .cancel(job: "c1-7", attempt: nil, reason: .cancelled),
            .signal(job: "c1-7", attempt: 1, signal: "USR1"),
            .lease(Lease(coordinator: "c1", epoch: 4, time: 1_700_000_000.25, ttl: 30)),
            .lease(Lease(coordinator: "c1", epoch: 4, time: 1_700_000_000.25, ttl: 30, collected: 4127)),
            .lease(Lease(coordinator: "c1", epoch: 4, time: 1_700_000_000.25, ttl: 30, collected: 4127, beat: 2.5)),
        ]
        for c in commands { #expect(try roundTrip(c) == c) }
    }

    @Test func theBeatAskedForIsAQuarterOfTheDeadHostTime() {
        #expect(HeartbeatCadence.interval(deadAfter: 10) == 2.5)
        #expect(HeartbeatCadence.interval(deadAfter: 3) == 0.75)
        #expect(HeartbeatCadence.interval(deadAfter: 600) == 5)
        #expect(HeartbeatCadence.interval(deadAfter: 0.5) == 0.25)
        // An agent ignores a wish outside what `run --heartbeat-interval` accepts.
        let odd = try? JSONParser.parse(Array(#"{"type":"lease","lease":{"coordinator":"c1","epoch":1,"ttl":30,"beat":0.001}}"#.utf8))
        if let odd, case .lease(let l)? = try? AgentCommand.parse(odd, file: "x").get() { #expect(l.beat == nil) } else { Issue.record("the lease did not parse") }
    }

    @Test func refusesUnknownTypesAndReasons() throws {
        let unknown = try JSONParser.parse(Array(#"{"type":"reboot"}"#.utf8))
        #expect(throws: WireError.self) { try AgentCommand.parse(unknown, file: "x").get() }
        let badReason = try JSONParser.parse(Array(#"{"type":"cancel","job":"j","reason":"because"}"#.utf8))
        guard case .failure(let e) = AgentCommand.parse(badReason, file: "x") else { Issue.record("accepted"); return }
        #expect(e.description.contains("because"))
        let badLease = try JSONParser.parse(Array(#"{"type":"lease","lease":{"coordinator":"../x","ttl":3}}"#.utf8))
        #expect(throws: WireError.self) { try AgentCommand.parse(badLease, file: "x").get() }
    }

    @Test func linkMessagesParse() throws {
        guard case .hello(let p, let v, let b)? = AgentMessage.parse(AgentMessage.helloLine(version: "0.2", build: "abc")) else {
            Issue.record("no hello"); return
        }
        #expect(p == WireProtocol.version && v == "0.2" && b == "abc")
        guard case .caughtUp(7)? = AgentMessage.parse(#"{"caught_up":7}"#) else { Issue.record("no caught_up"); return }
        guard case .heartbeat(let hb)? = AgentMessage.parse(#"{"heartbeat":{"seq":3}}"#) else { Issue.record("no heartbeat"); return }
        #expect(hb["seq"]?.intValue == 3)
        #expect(AgentMessage.parse("not json") == nil)
    }

    @Test func inlineOutputRoundTripsAnyBytes() throws {
        let bytes: [UInt8] = Array(0...255) + Array("héllo\n".utf8)
        let out = InlineOutput(stdout: bytes, stderr: [])
        let event = try JSONParser.parse(Array(("{\"seq\":1,\"type\":\"transition\"," + out.member + "}").utf8))
        guard case .event(1, let node)? = AgentMessage.parse(event.jsonText) else { Issue.record("not an event"); return }
        #expect(InlineOutput(event: node) == out)
    }

    @Test func base64MatchesTheRFCVectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, coded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == coded)
            #expect(Base64.decode(coded) == Array(plain.utf8))
        }
        #expect(Base64.decode("Zm9v!") == nil)
        #expect(Base64.decode("Zg=a") == nil)
    }
}

@Suite("Agent events")
struct AgentEventTests {
    @Test func eventsRoundTripThroughTheirJSON() throws {
        let events: [AgentEvent] = [
            .rejected(file: "1-2.json", reason: "malformed"),
            .rejected(file: "1-3.json", reason: "needs 2 GPU(s)", start: AttemptID(job: "c1-3", attempt: 2)),
            .leaseExpired(coordinator: "c1", epoch: 3, orphaned: 2),
            .ownerChanged(previousMachineID: "m0", previousHostname: "old", machineID: "m1", hostname: "new"),
            .agentStarted(pid: 42, machineID: "m1", hostname: "h1"),
            .agentStopped(pid: 42),
            .other(type: "from_the_future"),
        ]
        for e in events { #expect(AgentEvent.parse(try JSONParser.parse(Array(e.json.utf8))) == e) }
    }

    @Test func aTransitionCarriesItsEndAndItsSummary() throws {
        let line = #"{"seq":9,"type":"transition","job":"c1-4","attempt":2,"from":"running","state":"resource_limit","signal":"KILL","limit":"memory","max_rss_bytes":1024,"user_cpu_seconds":0.5,"system_cpu_seconds":0.25}"#
        guard case .transition(let t) = AgentEvent.parse(try JSONParser.parse(Array(line.utf8))) else { Issue.record("not a transition"); return }
        #expect(t.job == "c1-4" && t.attempt == 2 && t.state == .resourceLimit)
        #expect(t.summary == "resource_limit SIGKILL (memory)")
        #expect(t.cpuSeconds == 0.75 && t.maxRSSBytes == 1024 && t.output == nil)
        let unknownState = #"{"type":"transition","job":"j","attempt":1,"state":"teleported"}"#
        #expect(AgentEvent.parse(try JSONParser.parse(Array(unknownState.utf8))) == .other(type: "transition"))
    }
}
