import DroverInventory
import Testing
@testable import DroverCommands

/// `drover coordinator --quarantine-*` over the inventory's `defaults.quarantine`.
@Suite("Coordinator quarantine options")
struct QuarantineOptionsTests {
    let inventory = Inventory(source: .embeddedDefault, hosts: [], quarantine: QuarantineSettings(failures: 5, within: 60, short: 10, cooldown: 30))

    @Test func theCommandLineChangesTheInventorysFields() throws {
        let c = try CoordinatorCommand.parse(["--quarantine-failures", "2", "--quarantine-cooldown", "2m"])
        #expect(c.quarantineSettings(inventory) == QuarantineSettings(failures: 2, within: 60, short: 10, cooldown: 120))
        #expect(try CoordinatorCommand.parse([]).quarantineSettings(inventory) == inventory.quarantine)
    }

    @Test func offInTheInventoryOrOnTheCommandLine() throws {
        #expect(try CoordinatorCommand.parse(["--no-quarantine"]).quarantineSettings(inventory) == nil)
        var off = inventory
        off.quarantine = nil
        #expect(try CoordinatorCommand.parse([]).quarantineSettings(off) == nil)
        #expect(try CoordinatorCommand.parse(["--quarantine-failures", "3"]).quarantineSettings(off)?.failures == 3, "an explicit option turns it on")
    }

    @Test func badValuesAreRefusedNamingTheOption() {
        for (args, says) in [(["--quarantine-within", "soon"], "--quarantine-within soon"), (["--quarantine-failures", "0"], "--quarantine-failures")] {
            do {
                _ = try CoordinatorCommand.parse(args)
                Issue.record("\(args) was accepted")
            } catch {
                #expect(CoordinatorCommand.message(for: error).contains(says), "\(CoordinatorCommand.message(for: error))")
            }
        }
    }
}
