import ArgumentParser
import DroverCoordinator
import DroverInventory
import DroverCore
import Foundation
import Logging

extension StalePolicy: ExpressibleByArgument {}

/// `drover coordinator`: the loop that schedules jobs and watches hosts.
struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the coordinator loop in the foreground (run and submit start it for you).",
        discussion: """
            One coordinator runs per state directory (a lock enforces it). It connects to every host of the inventory over SSH, deploys the agent where none runs, streams each agent's events over one long-lived channel and applies each exactly once to the journal, renews each agent's lease, places queued jobs, declares a silent host down and re-runs its jobs elsewhere, and reconciles with a host that comes back.

            `drover run` and `drover submit` start it detached (with --idle-exit 600) when none runs; its log is <state>/coordinator.log. Stop it with `drover down` or SIGTERM; `kill -9` loses nothing (docs/failures.md).

            Examples:
              drover coordinator --dead-after 20
              drover coordinator --stale-policy keep-original
            """
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions

    @Option(name: .long, help: ArgumentHelp("Seconds without a heartbeat before a host is down and its jobs re-run elsewhere.", valueName: "seconds"))
    var deadAfter: Double = 10

    @Option(name: .long, help: ArgumentHelp("How long an agent keeps running jobs without hearing from this coordinator (asleep, stopped, cut off) before it kills them itself: 40m, 6h, 2d; a job's own --lease / `lease` overrides it.", valueName: "duration"))
    var leaseTTL: String = "6h"

    @Option(name: .long, help: ArgumentHelp("What wins when a host comes back with an attempt that was replaced: kill-stale (kill the original) or keep-original (keep it while the replacement has not finished; cancel the replacement).", valueName: "policy"))
    var stalePolicy: StalePolicy = .killStale

    @Option(name: .long, help: ArgumentHelp("Exit after this many seconds with no unfinished job (default: run until stopped).", valueName: "seconds"))
    var idleExit: Double?

    @Option(name: .long, help: ArgumentHelp("An agent binary to deploy where its platform fits (repeatable).", valueName: "path"))
    var agent: [String] = []

    func validate() throws {
        if deadAfter < 2 { throw ValidationError("--dead-after must be at least 2 seconds (heartbeats come every second)") }
        guard let ttl = Durations.parse(leaseTTL), ttl >= 3 else { throw ValidationError("--lease-ttl \(leaseTTL): not a duration of at least 3 seconds (90, 40m, 6h, 2d)") }
        if ttl < 2400 { Terminal.note("--lease-ttl \(leaseTTL) is under 40 minutes: a coordinator that sleeps longer (a closed laptop) makes every agent kill its jobs") }
    }

    func run() async throws {
        let state = stateOptions.location
        let inventory = try inventoryOptions.load()
        let lockFD: Int32?
        do { lockFD = try state.lockForCoordinator() } catch {
            Terminal.error("\(error)")
            throw ExitCode(1)
        }
        guard let lockFD else {
            Terminal.note("a coordinator already runs for \(state.path) (pid \(state.runningCoordinator().map(String.init) ?? "?"))")
            return
        }
        defer { close(lockFD) }
        let catalog: AgentCatalog
        do { catalog = try AgentCatalog(explicit: agent) } catch {
            Terminal.error("cannot read an agent binary: \(error)")
            throw ExitCode(2)
        }
        var settings = CoordinatorSettings()
        settings.deadAfter = deadAfter
        settings.leaseTTL = Durations.parse(leaseTTL) ?? CoordinatorSettings.defaultLease
        settings.stalePolicy = stalePolicy
        settings.idleExit = idleExit
        let coordinator: Coordinator
        do {
            coordinator = try Coordinator(state: state, inventory: inventory, catalog: catalog, settings: settings,
                                          logger: Logger(label: "drover.coordinator") { CoordinatorLogHandler(label: $0) })
        } catch {
            Terminal.error("cannot open the journal in \(state.path): \(error)")
            throw ExitCode(1)
        }
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        let sources = [SIGTERM, SIGINT].map { sig in
            let source = DispatchSource.makeSignalSource(signal: sig)
            source.setEventHandler { Task { await coordinator.stop() } }
            source.resume()
            return source
        }
        do {
            try await coordinator.run()
        } catch {
            Terminal.error("coordinator: \(error)")
            throw ExitCode(1)
        }
        sources.forEach { $0.cancel() }
    }
}
