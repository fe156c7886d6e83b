import DroverInventory
import DroverSSH
import DroverTestSupport
import Testing
@testable import DroverCoordinator

/// The coordinator's copies of journal state (the breakers, the untrusted hosts) follow the
/// journal across a rolled-back transaction (docs/failures.md, "Black-hole hosts", "Untrusted
/// host keys").
@Suite("Breakers and untrusted hosts after a rollback", .ownThread)
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

    /// A refusal of a changed host key whose transaction failed (a full journal disk) is
    /// recorded at the next refusal, and no job goes to the host meanwhile; before, the
    /// coordinator remembered the refusal as recorded and never wrote it.
    @Test func anUntrustedKeyWhoseRecordRolledBackIsRecordedAtTheNextRefusal() async throws {
        let t = TempState()
        defer { t.remove() }
        let c = try Coordinator(state: t.state, inventory: Inventory(source: .embeddedDefault, hosts: []),
                                catalog: AgentCatalog(explicit: [], drover: "/nonexistent/drover"), settings: CoordinatorSettings())
        let refusal = SSHError(.hostKeyMismatch, host: "h1", operation: "connect", message: "the host key of h1 changed")
        let first = try await c.refuseWithTheJournalFailing("h1", refusal)
        #expect(first.inJournal == "connecting", "the failing transaction wrote nothing")
        #expect(first.inMemory == "untrusted", "no job goes to the host meanwhile")
        await c.linkUntrusted("h1", error: refusal)
        #expect(try await c.hostStateInJournal("h1") == "untrusted", "the next refusal records it")
        #expect(try await c.untrustedAudits() == 1)
        await c.linkUntrusted("h1", error: refusal)
        #expect(try await c.untrustedAudits() == 1, "once recorded, the same refusal is not audited again")
    }
}

extension Coordinator {
    /// Registers `host`, then refuses its key (`linkUntrusted`) while every write to the hosts
    /// table fails; returns the host's state in the journal and in memory afterwards.
    func refuseWithTheJournalFailing(_ host: String, _ refusal: SSHError) throws -> (inJournal: String?, inMemory: String?) {
        _ = try journal.registerHost(host, at: 1)
        try journal.db.run("CREATE TEMP TRIGGER full_disk BEFORE UPDATE ON hosts BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        linkUntrusted(host, error: refusal)
        try journal.db.run("DROP TRIGGER full_disk")
        return (try hostStateInJournal(host), roster.hostState[host])
    }

    func hostStateInJournal(_ host: String) throws -> String? { try journal.hosts().first { $0.name == host }?.state }

    func untrustedAudits() throws -> Int { try journal.events().filter { $0.kind == "host" && $0.state == "untrusted" }.count }

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
