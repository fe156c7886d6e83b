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

            A host that fails several different jobs in a row quickly (a black hole: a missing tool, a full disk) is quarantined: it gets no new work until, after a cool-down, one probe job succeeds there (docs/failures.md, "Black-hole hosts"). The --quarantine-* options change the inventory's `defaults.quarantine`; --no-quarantine turns it off.

            Examples:
              drover coordinator --dead-after 20
              drover coordinator --stale-policy keep-original
              drover coordinator --quarantine-failures 3 --quarantine-cooldown 30m
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

    @Option(name: .long, help: ArgumentHelp("Quarantine a host after this many different jobs failed there in a row (default 4, or the inventory's defaults.quarantine).", valueName: "n"))
    var quarantineFailures: Int?

    @Option(name: .long, help: ArgumentHelp("The span those failures must all end within, e.g. 10m (default 10m).", valueName: "duration"))
    var quarantineWithin: String?

    @Option(name: .long, help: ArgumentHelp("How soon after its start a failure counts, e.g. 1m (default 1m); a job that fails later ends the streak.", valueName: "duration"))
    var quarantineShort: String?

    @Option(name: .long, help: ArgumentHelp("Time before a quarantined host gets one probe job, e.g. 10m (default 10m); doubled after each failed probe.", valueName: "duration"))
    var quarantineCooldown: String?

    @Flag(name: .long, help: "Never quarantine a host automatically (`drover hosts quarantine` still works).")
    var noQuarantine = false

    func validate() throws {
        if deadAfter < 2 { throw ValidationError("--dead-after must be at least 2 seconds (heartbeats come every second)") }
        guard let ttl = Durations.parse(leaseTTL), ttl >= 3 else { throw ValidationError("--lease-ttl \(leaseTTL): not a duration of at least 3 seconds (90, 40m, 6h, 2d)") }
        if ttl < 2400 { Terminal.note("--lease-ttl \(leaseTTL) is under 40 minutes: a coordinator that sleeps longer (a closed laptop) makes every agent kill its jobs") }
        if let n = quarantineFailures, n < 1 { throw ValidationError("--quarantine-failures must be 1 or more") }
        for (flag, value) in [("within", quarantineWithin), ("short", quarantineShort), ("cooldown", quarantineCooldown)] {
            if let value, (Durations.parse(value) ?? 0) <= 0 {
                throw ValidationError("--quarantine-\(flag) \(value) is not a positive duration: write seconds, or e.g. 90s, 10m, 2h")
            }
        }
    }

    /// The inventory's `defaults.quarantine`, with the command line's changes.
    func quarantineSettings(_ inventory: Inventory) -> QuarantineSettings? {
        if noQuarantine { return nil }
        let given = quarantineFailures != nil || quarantineWithin != nil || quarantineShort != nil || quarantineCooldown != nil
        guard var q = inventory.quarantine ?? (given ? QuarantineSettings() : nil) else { return nil }
        if let n = quarantineFailures { q.failures = n }
        if let d = quarantineWithin.flatMap(Durations.parse) { q.within = d }
        if let d = quarantineShort.flatMap(Durations.parse) { q.short = d }
        if let d = quarantineCooldown.flatMap(Durations.parse) { q.cooldown = d }
        return q
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
        settings.quarantine = quarantineSettings(inventory)
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
