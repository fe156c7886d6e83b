import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// `drover config`: the coordinator's settings in force, and where each came from.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Show the coordinator's settings in force and where each came from.",
        discussion: """
            The coordinator's settings (dead_after, lease_ttl, stale_policy, idle_exit, quarantine…) can be written in four places; for each setting the first place that has it wins:
              1. an option of `drover coordinator` (--dead-after 3)
              2. an environment variable (DROVER_DEAD_AFTER=3)
              3. the `coordinator` section of the inventory ({"coordinator": {"dead_after": 3}, "hosts": […]})
              4. the `coordinator` section of $XDG_CONFIG_HOME/drover/config.json (default ~/.config/drover/config.json)
            then the built-in value. Every coordinator reads them, also one that run, submit, map or ps start.

            The table shows what a coordinator started now with this inventory would use (FROM: flag, env, inventory FILE (FIELD), config FILE (FIELD), default). When a coordinator runs for the state directory, what it uses follows (it read them when it started). docs/settings.md lists every setting.

            Examples:
              drover config
              drover config --inventory lab.json
              drover config --json | jq '.settings[] | select(.name == "dead_after")'
            """
    )

    @OptionGroup var inventoryOptions: InventoryOptions
    @OptionGroup var stateOptions: StateOptions

    @Flag(name: .long, help: "Print the same as JSON: {settings: [{name, value, text, from, place, field}], running: {pid, settings} or null}.")
    var json = false

    func run() async throws {
        let inventory = try inventoryOptions.load()
        let resolved: [ResolvedSetting]
        do { resolved = try SettingsSources.layers(inventory: inventory).resolve() } catch {
            Terminal.error(error.description)
            throw ExitCode(2)
        }
        let running = runningSettings()
        if json {
            var o = JSONObject()
            o.set("inventory", "\(inventory.source)")
            o.set("config_file", UserConfigFile.path())
            o.set("settings", raw: SettingsSources.json(resolved).text)
            if let running {
                var r = JSONObject()
                r.set("pid", Int(running.pid))
                r.set("state", stateOptions.location.path)
                r.set("settings", raw: running.record.isEmpty ? "null" : running.record)
                o.set("running", object: r)
            } else {
                o.set("running", object: nil)
            }
            print(o.text)
            return
        }
        print("settings for a coordinator started now (inventory: \(inventory.source); config file: \(UserConfigFile.path())):")
        print(SettingsSources.table(SettingsSources.rows(resolved)))
        if resolved.contains(where: { $0.setting == .idleExit && $0.origin == .builtIn }) {
            print("(idle_exit: a coordinator that run, submit, map or ps start exits after \(SettingValue.seconds(CoordinatorLauncher.idleExit)) without unfinished jobs unless idle_exit is set)")
        }
        guard let running else { return }
        print("")
        if let rows = SettingsSources.rows(recorded: running.record), !rows.isEmpty {
            print("the coordinator running for \(stateOptions.location.path) (pid \(running.pid)) uses:")
            print(SettingsSources.table(rows))
        } else {
            print("the coordinator running for \(stateOptions.location.path) (pid \(running.pid)) recorded no settings (an older version); restart it to see them")
        }
    }

    /// The running coordinator's pid and the settings it recorded when it started.
    private func runningSettings() -> (pid: Int32, record: String)? {
        let location = stateOptions.location
        guard location.exists, let pid = location.runningCoordinator(), let journal = try? Journal(location) else { return nil }
        return (pid, (try? journal.meta("settings")) ?? "")
    }
}
