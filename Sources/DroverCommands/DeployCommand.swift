import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// `drover deploy`: install and start the agent on hosts.
struct DeployCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Install and start the agent on hosts (all of them by default).",
        discussion: """
            For each host, in parallel: detect its OS, architecture and glibc; pick the agent binary for that platform; upload it to <root>/bin/drover-agent-<build> (by content hash, so an unchanged binary is not sent again), check its SHA-256 on the host, start it detached and wait for its first heartbeat.

            A host already running this build costs one round trip and is reported `up-to-date`. A host running another build is `upgraded`: the old agent stops, its jobs keep running under their shims, and the new agent re-adopts them.

            Agent binaries are looked for, in order: every --agent PATH, ~/.local/share/drover/agents/<os>-<arch>/drover-agent (or under $XDG_DATA_HOME; scripts/install puts the static Linux agent there), and the drover-agent next to this drover. The platform and linkage of each binary are read from its headers: a dynamically linked agent (the Swift runtime, or a glibc newer than the host's) is skipped for that host with a note saying why. When no binary fits a host that has a Swift toolchain, the agent is built there (as with --build-on-host); otherwise the message gives the command that makes one.

            Exit status: 0 when every host has the agent running, 1 otherwise, 2 for an invalid inventory.

            Examples:
              drover deploy
              drover deploy studio closet-1 --agent ~/builds/drover-agent-linux-aarch64
              drover deploy studio --build-on-host
              drover deploy --json
            """
    )

    @OptionGroup var inventoryOptions: InventoryOptions

    @Option(name: .long, help: ArgumentHelp("An agent binary to deploy where its platform fits (repeatable).", valueName: "path"))
    var agent: [String] = []

    @Flag(name: .long, help: "Build the agent on each host with the host's own Swift toolchain, store it in the local catalog, and deploy it (for a Mac or an aarch64 box; see docs/macos.md).")
    var buildOnHost = false

    @Flag(name: .long, help: "Print the results as a JSON array.")
    var json = false

    @Argument(help: ArgumentHelp("Only these hosts (default: all).", valueName: "host"))
    var names: [String] = []

    func run() async throws {
        let inventory = try inventoryOptions.load()
        let hosts = try inventoryOptions.select(names, from: inventory)
        for path in agent where !FileManager.default.isReadableFile(atPath: path) {
            Terminal.error("--agent \(path): no such readable file")
            throw ExitCode(2)
        }
        let catalog: AgentCatalog
        do { catalog = try AgentCatalog(explicit: agent) } catch {
            Terminal.error("cannot read an agent binary: \(error)")
            throw ExitCode(2)
        }
        var deployer = Deployer(catalog: catalog)
        deployer.buildOnHost = buildOnHost
        let reports = await deployer.deploy(hosts)
        if json {
            print(try Terminal.json(reports))
        } else {
            var rows = [["HOST", "RESULT", "PLATFORM", "BUILD", "AGENT PID", "TIME"]]
            for r in reports {
                rows.append([r.host, r.outcome.rawValue, r.platform ?? "-", r.build ?? "-", r.agentPID.map(String.init) ?? "-", String(format: "%.2f s", r.seconds)])
            }
            // A failure's message already begins with the host's name.
            // Notes (binaries skipped and why, builds on hosts) of hosts that succeeded.
            let notes = reports.filter { $0.outcome != .failed }.flatMap { r in (r.message ?? "").split(separator: "\n").map { "\(r.host): \($0)" } }
            print(TextTable.render(rows) + notes.map { "\nnote: " + $0 }.joined() + Terminal.problems(reports.filter { $0.outcome == .failed }.map { $0.message ?? "\($0.host): failed" }))
        }
        if reports.contains(where: { $0.outcome == .failed }) { throw ExitCode(1) }
    }
}
