import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// `drover hosts`: check every host (`show`, the default), or quarantine and release one.
struct HostsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hosts",
        abstract: "Check every host of the inventory and show its state; quarantine or release a host.",
        discussion: """
            `drover hosts [HOST…]` (the `show` subcommand) connects to every host and shows its state; see `drover hosts show --help` for its columns and options.

            A host that fails several different jobs in a row quickly (a black hole: the tool the jobs run is missing there, its /tmp is full, a library is broken) is quarantined by the coordinator: it gets no new work (jobs that run there go on), LIVENESS shows `quarantined`, and the evidence (the jobs, their exit codes, the head of their stderr) is in `drover events` and under the table. After a cool-down (10 min, doubled after each failed probe) one probe job may run there; its success releases the host. Settings: `coordinator.quarantine` in the inventory or ~/.config/drover/config.json, DROVER_QUARANTINE_* variables, or `drover coordinator --quarantine-*` (`drover config` shows them; docs/settings.md); docs/failures.md explains the rules.

            `drover hosts quarantine HOST` takes a host out of use by hand (no probe: it stays quarantined until released); `drover hosts release HOST` puts a quarantined host back in use at once.

            Examples:
              drover hosts
              drover hosts --json | jq '.[] | select(.quarantine != null) | .name'
              drover hosts quarantine h3 --reason "disk replaced on Monday"
              drover hosts release h3
            """,
        subcommands: [HostsShowCommand.self, HostsQuarantineCommand.self, HostsReleaseCommand.self],
        defaultSubcommand: HostsShowCommand.self
    )
}

/// `drover hosts show` (the default): connect to every host and show what it is and whether it is usable.
struct HostsShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Check every host of the inventory and show its state.",
        discussion: """
            Connects to all hosts in parallel (each bounded by its connect_timeout) and prints one row per host: name, address (with ` via HOP` for a host reached through a bastion, see `jump` in docs/inventory.md), state, OS, architecture, CPUs, memory, the load average over one minute and the memory available (from the agent's last heartbeat; - without a running agent), slots (used/total while a coordinator runs), the coordinator's liveness verdict (up, suspect, down, connecting, reconciling; - when no coordinator runs; `quarantined` or `probing` for a quarantined host, whose evidence follows the table), the agent version (- until deployed), the age of the agent's last heartbeat (by the host's clock), how many coordinators the agent serves (live leases; - without a running agent) and the round-trip latency of the SSH connection (one channel open and close, no remote process).

            Two hosts whose machine id is the same (/etc/machine-id) are one machine under two names: both are named under the table, and the coordinator gives jobs only to the first of them, unless it is down.

            STATE is `up`, or why the host cannot be used: unreachable, refused, timed out, auth refused, host key mismatch, unknown host key, unsupported config. The full reason and what to do about it follow the table.

            Exit status: 0 when every host is up, 1 otherwise, 2 when the inventory is invalid.

            Examples:
              drover hosts
              drover hosts --inventory testbed/hosts.json
              drover hosts --json | jq '.[] | select(.state != "up") | .name'
              drover hosts --facts
            """
    )

    @OptionGroup var inventoryOptions: InventoryOptions
    @OptionGroup var stateOptions: StateOptions

    @Flag(name: .long, help: "Print the same facts as a JSON array.")
    var json = false

    @Flag(name: .long, help: "Collect each host's facts now (OS release, kernel, CPU model, GPUs, and the inventory's `facts` commands, run by the host's agent) and show them; the journal keeps them for placement (`--require`).")
    var facts = false

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
        if location.exists, let journal = try? Journal(location), let breakers = try? journal.quarantines() {
            for i in reports.indices { reports[i].quarantine = breakers.first { $0.host == reports[i].name && $0.isQuarantined } }
        }
        if location.exists, location.runningCoordinator() != nil, let journal = try? Journal(location), let seen = try? journal.hosts() {
            for i in reports.indices {
                guard let h = seen.first(where: { $0.name == reports[i].name }) else { continue }
                reports[i].liveness = h.state
                reports[i].usedSlots = h.usedSlots
                if reports[i].slots == nil { reports[i].slots = h.slots }
            }
        }
        if location.exists, let journal = try? Journal(location), let known = try? journal.hostFacts() {
            for i in reports.indices { reports[i].facts = known[reports[i].name].map { HostFactsView($0.report, at: $0.collectedAt) } }
        }
        if facts {
            let collected = await HostFactsCollector.collect(hosts.filter { h in reports.contains { $0.name == h.name && $0.isUp } })
            let journal = try? stateOptions.openJournal()
            for (host, result) in collected {
                guard let i = reports.firstIndex(where: { $0.name == host }) else { continue }
                switch result {
                case .success(let report):
                    reports[i].facts = HostFactsView(report, at: Date().timeIntervalSince1970)
                    try? journal?.setFacts(host, report)
                case .failure(let e):
                    Terminal.note("\(host): facts not collected: \(e.message)")
                }
            }
        }
        if json {
            print(try Terminal.json(reports))
        } else {
            print(Self.render(reports))
            if facts { print("\n" + HostFactsCollector.render(reports)) }
        }
        if reports.contains(where: { !$0.isUp }) { throw ExitCode(1) }
    }

    static func render(_ reports: [HostReport]) -> String {
        var rows = [["NAME", "ADDRESS", "STATE", "OS", "ARCH", "CPUS", "MEMORY", "LOAD", "MEM FREE", "SLOTS", "LIVENESS", "AGENT", "HEARTBEAT", "COORDS", "LATENCY"]]
        for r in reports {
            rows.append([
                r.name, r.address, r.state, r.os ?? "-", r.arch ?? "-", r.cpus.map(String.init) ?? "-",
                Terminal.bytes(r.memoryBytes), r.load1.map { String(format: "%.2f", $0) } ?? "-",
                r.memoryAvailableBytes.map { Terminal.bytes($0) } ?? "-", r.slots.map { s in r.usedSlots.map { "\($0)/\(s)" } ?? String(s) } ?? "-",
                r.quarantine.map { $0.state == .probing ? "probing" : "quarantined" } ?? r.liveness ?? "-", r.agentVersion ?? "-",
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
        let quarantined = reports.compactMap { r in r.quarantine.map { quarantineNote($0) } }
        return TextTable.render(rows) + Terminal.problems(reports.filter { !$0.isUp }.map { $0.error ?? "\($0.name): \($0.state)" })
            + (same.isEmpty ? "" : "\n" + same.joined(separator: "\n"))
            + (quarantined.isEmpty ? "" : "\n" + quarantined.joined(separator: "\n"))
    }

    /// "h3: quarantined since 14:02: <why>; a probe job may run there from 14:12 (or: drover hosts release h3)".
    static func quarantineNote(_ q: QuarantineRecord) -> String {
        let f = DateFormatter()
        f.dateFormat = "HH:mm:ss"
        let at = { (t: Double) in f.string(from: Date(timeIntervalSince1970: t)) }
        let next: String
        switch q.state {
        case .manual: next = "until released"
        case .probing: next = "a probe job (\(q.probeJob.map(String.init) ?? "?")) runs there"
        default: next = q.until.map { "a probe job may run there from \(at($0))" } ?? "a probe job may run there"
        }
        return "\(q.host): quarantined since \(at(q.since)): \(q.reason ?? "-"); \(next) (or: drover hosts release \(q.host))"
    }
}

/// `drover hosts quarantine HOST`: no new work for a host until someone releases it.
struct HostsQuarantineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quarantine",
        abstract: "Give a host no new work until `drover hosts release` (jobs running there go on).",
        discussion: """
            Recorded in the journal (and the audit trail) at once; a running coordinator stops placing jobs on the host as soon as it sees it, and one started later does too. Unlike the coordinator's own quarantine there is no automatic probe.

            Examples:
              drover hosts quarantine h3
              drover hosts quarantine h3 --reason "fan failing"
            """
    )

    @OptionGroup var inventoryOptions: InventoryOptions
    @OptionGroup var stateOptions: StateOptions

    @Option(name: .long, help: "Why (kept with the quarantine and shown by `drover hosts`).")
    var reason = "by hand"

    @Argument(help: ArgumentHelp("The host to quarantine.", valueName: "host"))
    var name: String

    func run() throws {
        let host = try HostsReleaseCommand.known(name, inventoryOptions)
        let journal = try stateOptions.openJournal()
        try journal.quarantineByHand(host, reason: reason == "by hand" ? "by \(LocalUser.name)" : "\(reason), by \(LocalUser.name)")
        print("\(host): quarantined; release it with `drover hosts release \(host)`")
    }
}

/// `drover hosts release HOST`: a quarantined host gets work again.
struct HostsReleaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "Put a quarantined host back in use at once (whether the coordinator or a person quarantined it).",
        discussion: """
            The host's earlier failures no longer count towards a new quarantine.

            Example:
              drover hosts release h3
            """
    )

    @OptionGroup var inventoryOptions: InventoryOptions
    @OptionGroup var stateOptions: StateOptions

    @Argument(help: ArgumentHelp("The host to release.", valueName: "host"))
    var name: String

    func run() throws {
        let host = try Self.known(name, inventoryOptions)
        let journal = try stateOptions.openJournal()
        if try journal.releaseQuarantine(host, by: LocalUser.name) {
            print("\(host): released; jobs go there again")
        } else {
            Terminal.note("\(host) is not quarantined")
        }
    }

    /// `name` when the inventory has such a host; else exits 2 naming the inventory.
    static func known(_ name: String, _ options: InventoryOptions) throws -> String {
        let inventory = try options.load()
        guard inventory.host(named: name) != nil else {
            Terminal.error("no host \"\(name)\" in \(inventory.source) (hosts: \(inventory.hosts.map(\.name).joined(separator: ", ")))")
            throw ExitCode(2)
        }
        return name
    }
}
