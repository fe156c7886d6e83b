import ArgumentParser

/// The `drover` command: the root of the subcommand tree.
public struct Drover: AsyncParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "drover",
        abstract: "Spread long computations over a handful of machines over SSH.",
        discussion: """
            Drover reads a host inventory (hosts.json), connects to each host over SSH, and runs jobs there under a small agent that keeps an exact record of everything it started.

            Inventory lookup: --inventory FILE, $DROVER_INVENTORY, ./hosts.json, ~/.config/drover/hosts.json; with none, this machine alone (a `local` host). See docs/inventory.md for the format.

            Settings of the coordinator (dead_after, lease_ttl, …): options of `drover coordinator` > DROVER_* environment variables > the inventory's `coordinator` section > ~/.config/drover/config.json > defaults; `drover config` shows the values in force.
            """,
        version: version,
        subcommands: [
            RunCommand.self, SubmitCommand.self, MapCommand.self, ApproveCommand.self, ReportCommand.self, PsCommand.self, StatusCommand.self, LogsCommand.self, WaitCommand.self, CancelCommand.self, RetryCommand.self,
            EventsCommand.self, HostsCommand.self, DeployCommand.self, ReapCommand.self, GCCommand.self, DownCommand.self, CoordinatorCommand.self, ConfigCommand.self,
        ]
    )

    public init() {}
}

extension Drover {
    /// Parses the process arguments and runs the chosen subcommand; the `drover` executable's whole `main`.
    public static func runMain(_ arguments: [String]? = nil) async {
        do {
            var command = try parseAsRoot(arguments)
            if let words = command as? PassesWordsThrough, words.asksForHelp {
                exit(withError: CleanExit.helpRequest(type(of: command)))
            }
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
