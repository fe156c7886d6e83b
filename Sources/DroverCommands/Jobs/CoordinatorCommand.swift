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

            `drover run`, `submit`, `map` and `ps` start it detached when none runs (then idle_exit defaults to 600 s); its log is <state>/coordinator.log. Stop it with `drover down` or SIGTERM; `kill -9` loses nothing (docs/failures.md).

            Settings: each option here can also be written in the `coordinator` section of the inventory or of ~/.config/drover/config.json, or in an environment variable (DROVER_DEAD_AFTER, DROVER_LEASE_TTL, DROVER_STALE_POLICY, DROVER_IDLE_EXIT, DROVER_QUARANTINE, DROVER_QUARANTINE_FAILURES, …), so the coordinators that other commands start use them too. Precedence: option > environment > inventory > config.json > default; `drover config` shows the values in force and where each came from (docs/settings.md).

            A host that fails several different jobs in a row quickly (a black hole: a missing tool, a full disk) is quarantined: it gets no new work until, after a cool-down, one probe job succeeds there (docs/failures.md, "Black-hole hosts"). The --quarantine-* options change the `coordinator.quarantine` settings; --no-quarantine turns it off.

            Examples:
              drover coordinator --dead-after 3
              drover coordinator --stale-policy keep-original
              drover coordinator --quarantine-failures 3 --quarantine-cooldown 30m
            """
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions

    @Option(name: .long, help: ArgumentHelp("Seconds without a heartbeat before a host is down and its jobs re-run elsewhere (default 10, at least 2).", valueName: "seconds"))
    var deadAfter: String?

    @Option(name: .long, help: ArgumentHelp("How long an agent keeps running jobs without hearing from this coordinator (asleep, stopped, cut off) before it kills them itself: 40m, 6h, 2d (default 6h); a job's own --lease / `lease` overrides it.", valueName: "duration"))
    var leaseTTL: String?

    @Option(name: .long, help: ArgumentHelp("What wins when a host comes back with an attempt that was replaced: kill-stale (kill the original, the default) or keep-original (keep it while the replacement has not finished; cancel the replacement).", valueName: "policy"))
    var stalePolicy: StalePolicy?

    @Option(name: .long, help: ArgumentHelp("Exit after this long with no unfinished job: seconds, 10m, or never (the default; 600 s for a coordinator that run, submit, map or ps start).", valueName: "seconds"))
    var idleExit: String?

    @Option(name: .long, help: ArgumentHelp("An agent binary to deploy where its platform fits (repeatable).", valueName: "path"))
    var agent: [String] = []

    @Option(name: .long, help: ArgumentHelp("Quarantine a host after this many different jobs failed there in a row (default 4).", valueName: "n"))
    var quarantineFailures: Int?

    @Option(name: .long, help: ArgumentHelp("The span those failures must all end within, e.g. 10m (default 10m).", valueName: "duration"))
    var quarantineWithin: String?

    @Option(name: .long, help: ArgumentHelp("How soon after its start a failure counts, e.g. 1m (default 1m); a job that fails later ends the streak.", valueName: "duration"))
    var quarantineShort: String?

    @Option(name: .long, help: ArgumentHelp("Time before a quarantined host gets one probe job, e.g. 10m (default 10m); doubled after each failed probe.", valueName: "duration"))
    var quarantineCooldown: String?

    @Flag(name: .long, inversion: .prefixedNo, help: "Quarantine black-hole hosts automatically (the default), or never (`drover hosts quarantine` still works).")
    var quarantine: Bool?

    @Flag(name: .long, help: ArgumentHelp("Started by run, submit, map or ps: idle_exit defaults to 600 s.", visibility: .private))
    var onDemand = false

    /// The settings given as options, validated; the layer above all others.
    func flagSection() throws -> CoordinatorSection {
        var section = CoordinatorSection()
        let texts: [(CoordinatorSetting, String?)] = [
            (.deadAfter, deadAfter), (.leaseTTL, leaseTTL), (.stalePolicy, stalePolicy?.rawValue), (.idleExit, idleExit),
            (.quarantineFailures, quarantineFailures.map(String.init)), (.quarantineWithin, quarantineWithin),
            (.quarantineShort, quarantineShort), (.quarantineCooldown, quarantineCooldown),
        ]
        for (setting, text) in texts {
            guard let text else { continue }
            guard let value = setting.parse(text) else { throw ValidationError("\(setting.flag) \(text): must be \(setting.expected)") }
            section[setting] = value
        }
        if let quarantine {
            section[.quarantine] = .on(quarantine)
            section.fields[.quarantine] = quarantine ? "--quarantine" : "--no-quarantine"
        } else if let given = section.values.keys.first(where: { $0.rawValue.hasPrefix("quarantine.") }) {
            // A quarantine option turns it on, whatever the files say.
            section[.quarantine] = .on(true)
            section.fields[.quarantine] = given.flag
        }
        return section
    }

    func validate() throws {
        _ = try flagSection()
    }

    /// Every place's settings for a coordinator using `inventory`, options first.
    func layers(_ inventory: Inventory, environment: @escaping (String) -> String? = { LocalUser.environment($0) }) throws -> CoordinatorSettingsLayers {
        var layers = try SettingsSources.layers(flags: try flagSection(), inventory: inventory, environment: environment)
        if onDemand { layers.idleExitDefault = .seconds(CoordinatorLauncher.idleExit) }
        return layers
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
        let resolved: [ResolvedSetting]
        do { resolved = try layers(inventory).resolve() } catch let error as SettingsError {
            Terminal.error(error.description)
            throw ExitCode(2)
        }
        let settings = SettingsSources.settings(resolved)
        Terminal.note("settings: " + resolved.map { "\($0.setting.key) \($0.value) (\($0.origin))" }.joined(separator: ", "))
        if settings.leaseTTL < 2400 {
            Terminal.note("lease_ttl \(SettingValue.seconds(settings.leaseTTL)) is under 40 minutes: a coordinator that sleeps longer (a closed laptop) makes every agent kill its jobs")
        }
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
