import DroverInventory
import DroverTestSupport
import Testing
@testable import DroverCoordinator

/// The coordinator's copy of the breakers follows the journal across a rolled-back
/// transaction (docs/failures.md, "Black-hole hosts").
@Suite("Breakers after a rollback", .ownThread)
struct BreakerResyncTests {
    /// Found by the hour soak: a probe's success applied in a transaction that a full journal
    /// disk rolled back left h4 released in memory and `probing` in the journal.
    @Test func aReleaseRolledBackIsUndoneInMemoryWithoutABogusByHandChange() async throws {
        let t = TempState()
        defer { t.remove() }
        let c = try Coordinator(state: t.state, inventory: Inventory(source: .embeddedDefault, hosts: []),
                                catalog: AgentCatalog(explicit: [], drover: "/nonexistent/drover"), settings: CoordinatorSettings())
        let probing = QuarantineRecord(host: "h4", state: .probing, since: 1, until: 2, cooldown: 5, reason: "its probe failed", probeJob: 376, probeAttempt: 4)
        let after = try await c.releaseInATransactionThatRollsBack(probing)
        #expect(after.inMemory == .closed, "the release was made in memory inside the transaction")
        #expect(after.inJournal == .probing, "and rolled back in the journal")
        try await c.resyncBreakersAfterRollback()
        #expect(await c.breakers.records["h4"] == probing)
        #expect(await c.breakers.loaded)
        // In step again: the next reading (after another process commits) finds no change.
        try await c.loadBreakers()
        #expect(await c.breakers.records["h4"]?.state == .probing)
    }
}

extension Coordinator {
    /// Records `q` and loads it, then, inside a transaction that fails, closes the breaker in
    /// memory and in the journal, as a probe's success does; returns both states afterwards.
    func releaseInATransactionThatRollsBack(_ q: QuarantineRecord) throws -> (inMemory: QuarantineRecord.State?, inJournal: QuarantineRecord.State?) {
        try journal.setQuarantine(q)
        try loadBreakers()
        struct DiskFull: Error {}
        do {
            try journal.db.transaction {
                let closed = QuarantineRecord(host: q.host, state: .closed, since: 3, reason: "probe job 376 succeeded", resetAt: 3)
                try journal.setQuarantine(closed)
                breakers.records[q.host] = closed
                throw DiskFull()
            }
        } catch is DiskFull {}
        return (breakers.records[q.host]?.state, try journal.quarantines().first { $0.host == q.host }?.state)
    }
}
