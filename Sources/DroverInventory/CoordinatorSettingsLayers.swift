import DroverCore

/// Where the value in force of a setting came from.
public enum SettingOrigin: Sendable, Equatable, CustomStringConvertible {
    /// An option of `drover coordinator`, e.g. `--dead-after`.
    case flag(String)
    /// An environment variable, e.g. `DROVER_DEAD_AFTER`.
    case environment(String)
    /// The inventory file's `coordinator` section (or its older `defaults.quarantine`).
    case inventory(file: String, field: String)
    /// The user's settings file, `~/.config/drover/config.json`.
    case configFile(file: String, field: String)
    /// Drover's built-in value.
    case builtIn

    /// "flag", "env", "inventory", "config" or "default".
    public var kind: String {
        switch self {
        case .flag: "flag"
        case .environment: "env"
        case .inventory: "inventory"
        case .configFile: "config"
        case .builtIn: "default"
        }
    }

    /// The option, variable or file, nil for the built-in value.
    public var place: String? {
        switch self {
        case .flag(let f): f
        case .environment(let v): v
        case .inventory(let file, _), .configFile(let file, _): file
        case .builtIn: nil
        }
    }

    /// The field inside the file, e.g. `coordinator.dead_after`.
    public var field: String? {
        switch self {
        case .inventory(_, let f), .configFile(_, let f): f
        default: nil
        }
    }

    /// "flag --dead-after", "env DROVER_DEAD_AFTER", "inventory hosts.json (coordinator.dead_after)", "default".
    public var description: String {
        var s = kind
        if let place { s += " " + place }
        if let field { s += " (\(field))" }
        return s
    }
}

/// A setting with its value in force and where that came from.
public struct ResolvedSetting: Sendable, Equatable {
    public var setting: CoordinatorSetting
    public var value: SettingValue
    public var origin: SettingOrigin

    public init(setting: CoordinatorSetting, value: SettingValue, origin: SettingOrigin) {
        self.setting = setting
        self.value = value
        self.origin = origin
    }
}

/// Every place the coordinator's settings are written; `resolve()` applies the precedence
/// flag > environment > inventory > config file > built-in, setting by setting.
public struct CoordinatorSettingsLayers: Sendable {
    public var flags = CoordinatorSection()
    public var environment = CoordinatorSection()
    public var inventory = CoordinatorSection()
    /// The inventory file, nil for the built-in inventory.
    public var inventoryFile: String?
    public var config = CoordinatorSection()
    /// The user's settings file (whether or not it exists).
    public var configFile: String?
    /// The built-in `idle_exit`: never for `drover coordinator`, 600 s for one that run, submit,
    /// map or ps start.
    public var idleExitDefault: SettingValue = CoordinatorSetting.idleExit.builtIn

    public init() {}

    /// Each setting's value in force and its origin, in `CoordinatorSetting.allCases` order.
    public func resolve() -> [ResolvedSetting] {
        let layers: [(CoordinatorSection, (CoordinatorSetting, String?) -> SettingOrigin)] = [
            (flags, { s, f in .flag(f ?? s.flag) }),
            (environment, { s, f in .environment(f ?? s.environmentName) }),
            (inventory, { s, f in .inventory(file: inventoryFile ?? "?", field: f ?? "coordinator." + s.key) }),
            (config, { s, f in .configFile(file: configFile ?? "?", field: f ?? "coordinator." + s.key) }),
        ]
        return CoordinatorSetting.allCases.map { setting in
            for (section, origin) in layers {
                if let v = section[setting] { return ResolvedSetting(setting: setting, value: v, origin: origin(setting, section.fields[setting])) }
            }
            return ResolvedSetting(setting: setting, value: setting == .idleExit ? idleExitDefault : setting.builtIn, origin: .builtIn)
        }
    }
}

/// The user's settings file, `$XDG_CONFIG_HOME/drover/config.json` (default
/// `~/.config/drover/config.json`): `{"coordinator": {…}}`, the same section as the inventory's.
public enum UserConfigFile {
    /// Where the file is (it need not exist).
    public static func path(environment: (String) -> String? = { LocalUser.environment($0) }, home: String = LocalUser.home) -> String {
        let configHome = environment("XDG_CONFIG_HOME").flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.config"
        return configHome + "/drover/config.json"
    }

    /// The file's `coordinator` section; empty when the file does not exist.
    public static func load(_ path: String) throws(SettingsError) -> CoordinatorSection {
        guard LocalFile.exists(path) else { return CoordinatorSection() }
        let bytes: [UInt8]
        do { bytes = try LocalFile.read(path) } catch { throw .unreadable(file: path, error) }
        return try parse(bytes, file: path)
    }

    /// Parses the file's text; `file` names it in messages.
    public static func parse(_ bytes: [UInt8], file: String) throws(SettingsError) -> CoordinatorSection {
        let root: JSONNode
        do { root = try JSONParser.parse(bytes) } catch { throw .syntax(file: file, error) }
        let d = ConfigDiagnostics(file: file)
        var section = CoordinatorSection()
        if var top = ObjectReader(root, path: "", diagnostics: d) {
            if let n = top.node("coordinator") { section = CoordinatorSection.read(n, path: "coordinator", diagnostics: d) }
            top.finish()
        }
        if !d.issues.isEmpty { throw .invalid(d.issues) }
        return section
    }
}
