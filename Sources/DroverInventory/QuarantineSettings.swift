import DroverCore

/// When a host counts as a black hole and is quarantined (`coordinator.quarantine` in the
/// inventory or config.json, `--quarantine-*` of `drover coordinator`; docs/failures.md, "Black-hole hosts").
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
}
