import DroverInventory
import Foundation
import DroverTestSupport
import Testing
@testable import DroverCoordinator

/// How the coordinator reads an agent's `caught_up` line (where the event log ended when the
/// stream reached it) against what it applied: a log that ends before that is a new one
/// (docs/failures.md), but events that follow `caught_up` in the same batch are not evidence.
@Suite("Caught up", .ownThread)
struct CaughtUpTests {
    static func event(_ seq: Int) -> String {
        #"{"seq":\#(seq),"time":1796176832.5,"type":"agent_started","pid":86,"machine_id":"m","hostname":"h1"}"#
    }

    static func coordinator(_ t: TempState, applied: Int) async throws -> Coordinator {
        let c = try Coordinator(state: t.state, inventory: Inventory(source: .embeddedDefault, hosts: []),
                                catalog: AgentCatalog(explicit: [], drover: "/nonexistent/drover"), settings: CoordinatorSettings())
        try await c.applied(applied, on: "h1")
        return c
    }

    /// Found by the soak: a stream read as one batch after a SIGSTOP of the coordinator
    /// (caught_up at 249, then 250–252) was taken for a replaced log, and every event of the
    /// host was applied (and audited) a second time.
    @Test func eventsAfterCaughtUpInTheSameBatchDoNotMakeTheLogLookReplaced() async throws {
        let t = TempState()
        defer { t.remove() }
        let c = try await Self.coordinator(t, applied: 249)
        await c.receive("h1", lines: [#"{"caught_up":249}"#, Self.event(250), Self.event(251), Self.event(252)])
        let journal = try Journal(t.state)
        #expect(try journal.events().filter { $0.message.contains("new event log") }.isEmpty)
        #expect(try journal.hosts().first { $0.name == "h1" }?.lastSeq == 252)
    }

    @Test func aLogThatEndsBeforeWhatWasAppliedIsANewLog() async throws {
        let t = TempState()
        defer { t.remove() }
        let c = try await Self.coordinator(t, applied: 252)
        await c.receive("h1", lines: [Self.event(1), #"{"caught_up":1}"#])
        let journal = try Journal(t.state)
        #expect(try journal.events().contains { $0.message.contains("has a new event log (it ends at seq 1, seq 252 was applied)") })
        #expect(try journal.hosts().first { $0.name == "h1" }?.lastSeq == 0)
    }
}

extension Coordinator {
    /// A host `connecting` whose events were applied up to `seq`, as `run()` leaves it.
    func applied(_ seq: Int, on host: String) throws {
        _ = try journal.registerHost(host, at: wallNow)
        try journal.setLastSeq(host, seq)
        roster.lastSeq[host] = seq
        roster.hostState[host] = "connecting"
    }
}
