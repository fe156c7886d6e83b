import Testing
@testable import DroverCoordinator

/// What dispatch remembers between rounds stays bounded by the jobs in flight.
@Suite("DispatchLedger")
struct DispatchLedgerTests {
    @Test func anEndedJobsSentCancelsAreForgotten() {
        var ledger = DispatchLedger()
        ledger.cancelSent = ["7/1", "7/2", "8/1", "17/1"]
        ledger.forget(job: 7, through: 2)
        #expect(ledger.cancelSent == ["8/1", "17/1"])
    }
}
