import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// Gathers the coordinator's settings from every place they are written (docs/settings.md) and
/// turns the values in force into `CoordinatorSettings`.
enum SettingsSources {
    /// The layers for a coordinator that uses `inventory`: `flags` (from `drover coordinator`),
    /// the environment, the inventory's `coordinator` section and the user's config.json.
    static func layers(flags: CoordinatorSection = CoordinatorSection(), inventory: Inventory,
                       environment: (String) -> String? = { LocalUser.environment($0) },
                       home: String = LocalUser.home) throws(SettingsError) -> CoordinatorSettingsLayers {
        var layers = CoordinatorSettingsLayers()
        layers.flags = flags
        layers.environment = try CoordinatorSection.fromEnvironment(environment)
        layers.inventory = inventory.coordinator
        if case .file(let path) = inventory.source { layers.inventoryFile = path }
        let configFile = UserConfigFile.path(environment: environment, home: home)
        layers.configFile = configFile
        layers.config = try UserConfigFile.load(configFile)
        return layers
    }

    /// Checks the environment and config.json before a command starts a coordinator, so a
    /// mistake is said here rather than in the coordinator's log; exits 2 naming it.
    static func check(inventory: Inventory) throws {
        do { _ = try layers(inventory: inventory) } catch {
            Terminal.error(error.description)
            throw ExitCode(2)
        }
    }

    /// The settings a coordinator runs with.
    static func settings(_ resolved: [ResolvedSetting]) -> CoordinatorSettings {
        var s = CoordinatorSettings()
        var section = CoordinatorSection()
        for r in resolved {
            section[r.setting] = r.value
            switch (r.setting, r.value) {
            case (.deadAfter, .seconds(let v)): s.deadAfter = v
            case (.leaseTTL, .seconds(let v)): s.leaseTTL = v
            case (.stalePolicy, .word(let w)): s.stalePolicy = StalePolicy(rawValue: w) ?? .killStale
            case (.idleExit, .seconds(let v)): s.idleExit = v.isFinite ? v : nil
            default: break
            }
        }
        s.quarantine = section.quarantineSettings
        s.record = json(resolved).text
        return s
    }

    /// One object per setting: name, value (seconds as a number, "never", a count, a word, true/false), text, from, place, field.
    static func json(_ resolved: [ResolvedSetting]) -> JSONArrayText {
        JSONArrayText(resolved.map { r in
            var o = JSONObject()
            o.set("name", r.setting.key)
            switch r.value {
            case .seconds(let v): if v.isFinite { o.set("value", v) } else { o.set("value", "never") }
            case .count(let n): o.set("value", n)
            case .word(let w): o.set("value", w)
            case .on(let b): o.set("value", b)
            }
            o.set("text", r.value.description)
            o.set("from", r.origin.kind)
            o.set("place", r.origin.place)
            o.set("field", r.origin.field)
            return o
        })
    }

    /// A table: SETTING, VALUE, FROM.
    static func table(_ rows: [(name: String, text: String, from: String)]) -> String {
        TextTable.render([["SETTING", "VALUE", "FROM"]] + rows.map { [$0.name, $0.text, $0.from] })
    }

    /// The rows of `table` for resolved settings.
    static func rows(_ resolved: [ResolvedSetting]) -> [(name: String, text: String, from: String)] {
        resolved.map { ($0.setting.key, $0.value.description, $0.origin.description) }
    }

    /// The rows of `table` from the JSON a coordinator recorded (`json`), nil when unreadable.
    static func rows(recorded text: String) -> [(name: String, text: String, from: String)]? {
        guard let root = try? JSONParser.parse(Array(text.utf8)), case .array(let items) = root.value else { return nil }
        return items.compactMap { item in
            guard let name = item["name"]?.stringValue, let value = item["text"]?.stringValue, let kind = item["from"]?.stringValue else { return nil }
            var from = kind
            if let place = item["place"]?.stringValue { from += " " + place }
            if let field = item["field"]?.stringValue { from += " (\(field))" }
            return (name, value, from)
        }
    }
}

/// A JSON array of objects, as text.
struct JSONArrayText {
    var items: [JSONObject]
    init(_ items: [JSONObject]) { self.items = items }
    var text: String { "[" + items.map(\.text).joined(separator: ",") + "]" }
}
