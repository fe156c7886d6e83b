import DroverCore

/// One setting of the coordinator, with its names in each place it can be written: the
/// `coordinator` section of the inventory or of `~/.config/drover/config.json`, an environment
/// variable, and a `drover coordinator` option (docs/settings.md).
public enum CoordinatorSetting: String, Sendable, CaseIterable {
    case deadAfter = "dead_after"
    case leaseTTL = "lease_ttl"
    case stalePolicy = "stale_policy"
    case idleExit = "idle_exit"
    case quarantine = "quarantine"
    case quarantineFailures = "quarantine.failures"
    case quarantineWithin = "quarantine.within"
    case quarantineShort = "quarantine.short"
    case quarantineCooldown = "quarantine.cooldown"

    /// The field path inside a `coordinator` section, e.g. `dead_after`, `quarantine.failures`.
    public var key: String { rawValue }

    /// The environment variable, e.g. `DROVER_DEAD_AFTER`, `DROVER_QUARANTINE_FAILURES`.
    public var environmentName: String {
        "DROVER_" + String(rawValue.uppercased().map { $0 == "." ? "_" : $0 })
    }

    /// The option of `drover coordinator`, e.g. `--dead-after`; `--quarantine`/`--no-quarantine` for the switch.
    public var flag: String {
        "--" + String(rawValue.map { $0 == "_" || $0 == "." ? "-" : $0 })
    }

    /// The stale policies, as `StalePolicy` spells them.
    public static let stalePolicies = ["kill-stale", "keep-original"]

    /// The built-in value.
    public var builtIn: SettingValue {
        switch self {
        case .deadAfter: .seconds(10)
        case .leaseTTL: .seconds(6 * 3600)
        case .stalePolicy: .word("kill-stale")
        case .idleExit: .seconds(.infinity)
        case .quarantine: .on(true)
        case .quarantineFailures: .count(4)
        case .quarantineWithin: .seconds(600)
        case .quarantineShort: .seconds(60)
        case .quarantineCooldown: .seconds(600)
        }
    }

    /// What a valid value looks like, for messages.
    public var expected: String {
        switch self {
        case .deadAfter: "a number of seconds of at least 2 (heartbeats come every second), e.g. 3 or \"10s\""
        case .leaseTTL: "a duration of at least 3 seconds, e.g. 90, \"40m\", \"6h\", \"2d\""
        case .stalePolicy: "one of " + Self.stalePolicies.map { "`\($0)`" }.joined(separator: ", ")
        case .idleExit: "seconds (or e.g. \"10m\") with no unfinished job before the coordinator exits, or \"never\""
        case .quarantine: "true or false (on or off)"
        case .quarantineFailures: "a whole number, 1 or more (how many different jobs must fail in a row), e.g. 4"
        case .quarantineWithin, .quarantineShort, .quarantineCooldown: "a positive duration: seconds, or \"90s\", \"10m\", \"2h\""
        }
    }

    /// Reads a value as written in an environment variable or on a command line; nil when invalid.
    public func parse(_ text: String) -> SettingValue? {
        let t = String(text.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
        switch self {
        case .deadAfter: return Durations.parse(t).flatMap { $0 >= 2 && $0.isFinite ? .seconds($0) : nil }
        case .leaseTTL: return Durations.parse(t).flatMap { $0 >= 3 && $0.isFinite ? .seconds($0) : nil }
        case .stalePolicy: return Self.stalePolicies.contains(t) ? .word(t) : nil
        case .idleExit:
            if t == "never" { return .seconds(.infinity) }
            return Durations.parse(t).flatMap { $0 >= 0 && $0.isFinite ? .seconds($0) : nil }
        case .quarantine:
            switch t.lowercased() {
            case "true", "on", "yes", "1": return .on(true)
            case "false", "off", "no", "0": return .on(false)
            default: return nil
            }
        case .quarantineFailures: return Int(t).flatMap { $0 >= 1 ? .count($0) : nil }
        case .quarantineWithin, .quarantineShort, .quarantineCooldown:
            return Durations.parse(t).flatMap { $0 > 0 && $0.isFinite ? .seconds($0) : nil }
        }
    }

    /// Reads a value from a JSON node (a number, a string, or true/false for `quarantine`); nil when invalid.
    func parse(_ node: JSONNode) -> SettingValue? {
        if let b = node.boolValue { return self == .quarantine ? .on(b) : nil }
        if let s = node.stringValue { return parse(s) }
        if case .number(let text) = node.value { return parse(text) }
        return nil
    }
}

/// A setting's value: seconds (`.infinity` for "never"), a count, a word, or on/off.
public enum SettingValue: Sendable, Equatable, CustomStringConvertible {
    case seconds(Double)
    case count(Int)
    case word(String)
    case on(Bool)

    /// "3 s", "6 h", "never", "4", "kill-stale", "on".
    public var description: String {
        switch self {
        case .seconds(let s):
            if !s.isFinite { return "never" }
            for (unit, size) in [("d", 86400.0), ("h", 3600.0), ("min", 60.0)] where s >= size && (s / size).rounded() == s / size {
                return "\(Int(s / size)) \(unit)"
            }
            return s.rounded() == s ? "\(Int(s)) s" : "\(s) s"
        case .count(let n): return String(n)
        case .word(let w): return w
        case .on(let b): return b ? "on" : "off"
        }
    }

    /// Seconds, or nil for "never" and for values that are not durations.
    public var seconds: Double? {
        if case .seconds(let s) = self, s.isFinite { return s }
        return nil
    }
}

/// The coordinator's settings as one place writes them (a file's `coordinator` section, the
/// environment, the command line); a setting not written there is absent.
public struct CoordinatorSection: Sendable, Equatable {
    /// The values written, by setting.
    public var values: [CoordinatorSetting: SettingValue] = [:]
    /// Where each value was written inside the file, e.g. `coordinator.dead_after` (files only).
    public var fields: [CoordinatorSetting: String] = [:]

    public init(values: [CoordinatorSetting: SettingValue] = [:]) { self.values = values }

    public subscript(_ setting: CoordinatorSetting) -> SettingValue? {
        get { values[setting] }
        set { values[setting] = newValue }
    }

    /// Reads a `coordinator` section: `dead_after`, `lease_ttl`, `stale_policy`, `idle_exit`,
    /// `quarantine`; every problem is reported naming its field.
    static func read(_ node: JSONNode, path: String, diagnostics d: ConfigDiagnostics) -> CoordinatorSection {
        var section = CoordinatorSection()
        guard var r = ObjectReader(node, path: path, diagnostics: d) else { return section }
        for setting in [CoordinatorSetting.deadAfter, .leaseTTL, .stalePolicy, .idleExit] {
            guard let n = r.node(setting.key) else { continue }
            section.set(setting, n, path: r.childPath(setting.key), diagnostics: d)
        }
        if let n = r.node("quarantine") { section.readQuarantine(n, path: r.childPath("quarantine"), diagnostics: d) }
        r.finish()
        return section
    }

    /// Reads `quarantine`: true, false, or an object of `failures`, `within`, `short`, `cooldown`
    /// (which turns it on); also the inventory's older `defaults.quarantine`.
    mutating func readQuarantine(_ node: JSONNode, path: String, diagnostics d: ConfigDiagnostics) {
        if node.boolValue != nil {
            set(.quarantine, node, path: path, diagnostics: d)
            return
        }
        guard node.objectMembers != nil else {
            d.report("must be true, false or an object of failures, within, short and cooldown; not \(node.kindDescription)", path: path, at: node.position)
            return
        }
        guard var r = ObjectReader(node, path: path, diagnostics: d) else { return }
        values[.quarantine] = .on(true)
        fields[.quarantine] = path
        for setting in [CoordinatorSetting.quarantineFailures, .quarantineWithin, .quarantineShort, .quarantineCooldown] {
            let key = String(setting.key.dropFirst("quarantine.".count))
            guard let n = r.node(key) else { continue }
            set(setting, n, path: r.childPath(key), diagnostics: d)
        }
        r.finish()
    }

    private mutating func set(_ setting: CoordinatorSetting, _ node: JSONNode, path: String, diagnostics d: ConfigDiagnostics) {
        if let v = setting.parse(node) {
            values[setting] = v
            fields[setting] = path
        } else {
            d.report("must be \(setting.expected)", path: path, at: node.position)
        }
    }

    /// The settings written in `environment` (`DROVER_DEAD_AFTER`, …); throws naming the first
    /// variable whose value is invalid.
    public static func fromEnvironment(_ environment: (String) -> String?) throws(SettingsError) -> CoordinatorSection {
        var section = CoordinatorSection()
        for setting in CoordinatorSetting.allCases {
            guard let text = environment(setting.environmentName), !text.isEmpty else { continue }
            guard let v = setting.parse(text) else {
                throw .environment(name: setting.environmentName, value: text, expected: setting.expected)
            }
            section[setting] = v
        }
        if section[.quarantine] == nil, let given = section.values.keys.first(where: { $0.rawValue.hasPrefix("quarantine.") }) {
            section[.quarantine] = .on(true)
            section.fields[.quarantine] = given.environmentName
        }
        return section
    }

    /// The quarantine rules these values make (the built-in ones for what is absent); nil when off.
    public var quarantineSettings: QuarantineSettings? {
        if self[.quarantine] == .on(false) { return nil }
        var q = QuarantineSettings()
        if case .count(let n)? = self[.quarantineFailures] { q.failures = n }
        if let s = self[.quarantineWithin]?.seconds { q.within = s }
        if let s = self[.quarantineShort]?.seconds { q.short = s }
        if let s = self[.quarantineCooldown]?.seconds { q.cooldown = s }
        return q
    }
}

/// A settings file or variable that cannot be used; every case names it and what to write.
public enum SettingsError: Error, Sendable, CustomStringConvertible {
    case environment(name: String, value: String, expected: String)
    case unreadable(file: String, SystemError)
    case syntax(file: String, JSONSyntaxError)
    case invalid([ConfigIssue])

    public var description: String {
        switch self {
        case .environment(let name, let value, let expected):
            return "\(name)=\(JSONText.quote(value)): must be \(expected); fix or unset the variable"
        case .unreadable(let file, let e):
            return "\(file): cannot read the settings file: \(e)"
        case .syntax(let file, let e):
            return "\(file):\(e.position.line):\(e.position.column): malformed JSON: \(e.message)"
        case .invalid(let issues):
            return issues.map(\.description).joined(separator: "\n")
        }
    }
}
