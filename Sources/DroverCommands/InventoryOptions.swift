import ArgumentParser
import DroverInventory

/// `--inventory`, shared by every command that talks to hosts.
public struct InventoryOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The host inventory (JSON).",
        discussion: "Default: $DROVER_INVENTORY, else ./hosts.json, else ~/.config/drover/hosts.json, else this machine alone.",
        valueName: "file"))
    public var inventory: String?

    public init() {}

    /// Loads the inventory, printing every problem and exiting with status 2 when it is invalid.
    public func load() throws -> Inventory {
        do {
            return try InventoryLoader(explicitPath: inventory).load()
        } catch {
            Terminal.error(error.description)
            throw ExitCode(2)
        }
    }

    /// The hosts named on the command line (all when none), or exit 2 naming the unknown ones.
    public func select(_ names: [String], from inventory: Inventory) throws -> [HostSpec] {
        guard !names.isEmpty else { return inventory.hosts }
        let unknown = names.filter { inventory.host(named: $0) == nil }
        if !unknown.isEmpty {
            Terminal.error("no host named \(unknown.joined(separator: ", ")) in \(inventory.source); hosts: \(inventory.hosts.map(\.name).joined(separator: ", "))")
            throw ExitCode(2)
        }
        return inventory.hosts.filter { names.contains($0.name) }
    }
}
