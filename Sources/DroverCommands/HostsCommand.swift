import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// `drover hosts`: connect to every host and show what it is and whether it is usable.
struct HostsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hosts",
        abstract: "Check every host of the inventory and show its state.",
        discussion: """
            Connects to all hosts in parallel (each bounded by its connect_timeout) and prints one row per host: name, address (with ` via HOP` for a host reached through a bastion, see `jump` in docs/inventory.md), state, OS, architecture, CPUs, memory, slots (used/total while a coordinator runs), the coordinator's liveness verdict (up, suspect, down, connecting, reconciling; - when no coordinator runs), the agent version (- until deployed), the age of the agent's last heartbeat (by the host's clock), how many coordinators the agent serves (live leases; - without a running agent) and the round-trip latency of the SSH connection (one channel open and close, no remote process).

            Two hosts whose machine id is the same (/etc/machine-id) are one machine under two names: both are named under the table, and the coordinator gives jobs only to the first of them, unless it is down.

            STATE is `up`, or why the host cannot be used: unreachable, refused, timed out, auth refused, host key mismatch, unknown host key, unsupported config. The full reason and what to do about it follow the table.

            Exit status: 0 when every host is up, 1 otherwise, 2 when the inventory is invalid.

            Examples:
              drover hosts
              drover hosts --inventory testbed/hosts.json
              drover hosts --json | jq '.[] | select(.state != "up") | .name'
            """
    )

    @OptionGroup var inventoryOptions: InventoryOptions
    @OptionGroup var stateOptions: StateOptions

    @Flag(name: .long, help: "Print the same facts as a JSON array.")
    var json = false

    @Argument(help: ArgumentHelp("Only these hosts (default: all).", valueName: "host"))
    var names: [String] = []

    func run() async throws {
        let inventory = try inventoryOptions.load()
        let hosts = try inventoryOptions.select(names, from: inventory)
        for host in hosts {
            for note in host.ignoredConfig { Terminal.note("\(host.name): \(note)") }
        }
        var reports = await HostProbe().probe(hosts)
        let location = stateOptions.location
        if location.exists, location.runningCoordinator() != nil, let journal = try? Journal(location), let seen = try? journal.hosts() {
            for i in reports.indices {
                guard let h = seen.first(where: { $0.name == reports[i].name }) else { continue }
                reports[i].liveness = h.state
                reports[i].usedSlots = h.usedSlots
                if reports[i].slots == nil { reports[i].slots = h.slots }
            }
        }
        if json {
            print(try Terminal.json(reports))
        } else {
            print(Self.render(reports))
        }
        if reports.contains(where: { !$0.isUp }) { throw ExitCode(1) }
    }

    static func render(_ reports: [HostReport]) -> String {
        var rows = [["NAME", "ADDRESS", "STATE", "OS", "ARCH", "CPUS", "MEMORY", "SLOTS", "LIVENESS", "AGENT", "HEARTBEAT", "COORDS", "LATENCY"]]
        for r in reports {
            rows.append([
                r.name, r.address, r.state, r.os ?? "-", r.arch ?? "-", r.cpus.map(String.init) ?? "-",
                Terminal.bytes(r.memoryBytes), r.slots.map { s in r.usedSlots.map { "\($0)/\(s)" } ?? String(s) } ?? "-", r.liveness ?? "-", r.agentVersion ?? "-",
                r.heartbeatAgeSeconds.map { "\(Int($0)) s ago" } ?? "-",
                r.coordinators.map(String.init) ?? "-",
                r.latencyMs.map { String(format: "%.2f ms", $0) } ?? "-",
            ])
        }
        let same = reports.compactMap { r in
            r.sameMachineAs.map { "warning: \(r.name) and \($0) are the same machine (machine id \(r.machineID?.prefix(12) ?? "?")): the coordinator gives jobs to \($0) only, unless it is down; remove one of them from the inventory" }
        }
            + reports.compactMap { r in
                r.rootUsedBy.map { "warning: \(r.name): its agent's state directory is run by the agent of another machine, \($0) (a root shared through a shared home); give each host its own root, e.g. the default ~/.drover/%h" }
            }
        return TextTable.render(rows) + Terminal.problems(reports.filter { !$0.isUp }.map { $0.error ?? "\($0.name): \($0.state)" })
            + (same.isEmpty ? "" : "\n" + same.joined(separator: "\n"))
    }
}
