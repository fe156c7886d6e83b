import DroverInventory
import Testing
@testable import DroverCommands

/// `drover coordinator --quarantine-*` over the inventory's `coordinator.quarantine`.
@Suite("Coordinator quarantine options")
struct QuarantineOptionsTests {
    let inventory = Inventory(source: .embeddedDefault, hosts: [], coordinator: CoordinatorSection(values: [
        .quarantine: .on(true), .quarantineFailures: .count(5), .quarantineWithin: .seconds(60), .quarantineShort: .seconds(10), .quarantineCooldown: .seconds(30),
    ]))

    /// The quarantine rules a coordinator started with `args` uses (no environment, no config file).
    func quarantine(_ args: [String], _ inventory: Inventory) throws -> QuarantineSettings? {
        let layers = try CoordinatorCommand.parse(args).layers(inventory, environment: { $0 == "XDG_CONFIG_HOME" ? "/nonexistent" : nil })
        return SettingsSources.settings(layers.resolve()).quarantine
    }

    @Test func theCommandLineChangesTheInventorysFields() throws {
        #expect(try quarantine(["--quarantine-failures", "2", "--quarantine-cooldown", "2m"], inventory) == QuarantineSettings(failures: 2, within: 60, short: 10, cooldown: 120))
        #expect(try quarantine([], inventory) == inventory.quarantine)
    }

    @Test func offInTheInventoryOrOnTheCommandLine() throws {
        #expect(try quarantine(["--no-quarantine"], inventory) == nil)
        let off = Inventory(source: .embeddedDefault, hosts: [], coordinator: CoordinatorSection(values: [.quarantine: .on(false)]))
        #expect(try quarantine([], off) == nil)
        #expect(try quarantine(["--quarantine-failures", "3"], off)?.failures == 3, "an explicit option turns it on")
    }

    @Test func badValuesAreRefusedNamingTheOption() {
        for (args, says) in [(["--quarantine-within", "soon"], "--quarantine-within soon"), (["--quarantine-failures", "0"], "--quarantine-failures"), (["--dead-after", "1"], "--dead-after 1")] {
            do {
                _ = try CoordinatorCommand.parse(args)
                Issue.record("\(args) was accepted")
            } catch {
                #expect(CoordinatorCommand.message(for: error).contains(says), "\(CoordinatorCommand.message(for: error))")
            }
        }
    }
}
