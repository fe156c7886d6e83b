import DroverCore

/// When a host counts as a black hole and is quarantined (`defaults.quarantine` in the
/// inventory, `--quarantine-*` of `drover coordinator`; docs/failures.md, "Black-hole hosts").
public struct QuarantineSettings: Sendable, Equatable {
    /// Different jobs that must fail on the host in a row.
    public var failures = 4
    /// Seconds within which they all ended.
    public var within: Double = 600
    /// A failure counts only when its attempt ended within this many seconds of its start.
    public var short: Double = 60
    /// Seconds before the first probe job may run there; each failed probe doubles it.
    public var cooldown: Double = 600

    public init(failures: Int = 4, within: Double = 600, short: Double = 60, cooldown: Double = 600) {
        self.failures = failures
        self.within = within
        self.short = short
        self.cooldown = cooldown
    }

    /// Reads `false` (no quarantine), `true` (the defaults) or an object of the four fields;
    /// `.some(nil)` means disabled, `nil` that the node was invalid (reported).
    static func read(_ node: JSONNode, path: String, diagnostics d: ConfigDiagnostics) -> QuarantineSettings?? {
        if let b = node.boolValue { return b ? .some(QuarantineSettings()) : .some(nil) }
        guard var r = ObjectReader(node, path: path, diagnostics: d) else { return nil }
        var s = QuarantineSettings()
        var ok = true
        if let n = r.int("failures") {
            if n >= 1 { s.failures = n } else {
                d.report("must be 1 or more (how many different jobs must fail in a row), e.g. 4", path: r.childPath("failures"), at: r.node("failures")?.position)
                ok = false
            }
        }
        for (key, keyPath) in [("within", \QuarantineSettings.within), ("short", \.short), ("cooldown", \.cooldown)] {
            guard let n = r.node(key) else { continue }
            if let v = n.doubleValue ?? n.stringValue.flatMap(Durations.parse), v > 0 {
                s[keyPath: keyPath] = v
            } else {
                d.report("must be a positive duration: seconds, or \"90s\", \"10m\", \"2h\"", path: r.childPath(key), at: n.position)
                ok = false
            }
        }
        r.finish()
        return ok ? .some(s) : nil
    }
}
