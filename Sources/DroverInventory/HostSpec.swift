import DroverCore

/// How the coordinator reaches a host.
public enum Transport: String, Sendable, CaseIterable {
    /// Over SSH with libssh2.
    case ssh
    /// This machine, without SSH.
    case local
}

/// What to do with a host key that is not in known_hosts.
public enum HostKeyPolicy: String, Sendable, CaseIterable {
    /// Refuse it (the default), printing the command to trust it.
    case strict
    /// Record it in known_hosts and go on; a changed key is still refused.
    case acceptNew = "accept-new"
}

/// One host of the inventory, with defaults and `~/.ssh/config` applied.
public struct HostSpec: Sendable, Equatable {
    public var name: String
    /// The network address to connect to (after `HostName` from ssh_config).
    public var address: String
    /// The address as written in the inventory (an ssh_config alias, perhaps).
    public var alias: String
    public var port: Int
    public var user: String
    /// Key files to try in order, after ssh-agent. Explicit `identity` gives exactly one.
    public var identities: [String]
    /// Whether `identity` was set explicitly (then only that key is tried, and it must exist).
    public var identityIsExplicit: Bool
    public var knownHosts: String
    public var hostKeyPolicy: HostKeyPolicy
    /// Job slots; nil means "the host's CPU count", learned when connecting.
    public var slots: Int?
    public var labels: [String: String]
    /// The agent's directory on the host, e.g. `~/.drover` (a `~` is the remote home).
    public var root: String
    public var env: [String: String]
    /// Seconds allowed for TCP connect, handshake and authentication.
    public var connectTimeout: Double
    public var transport: Transport
    /// ssh_config options that would change how to connect and that Drover cannot honour yet.
    /// Connecting to such a host fails with these reasons rather than connecting the wrong way.
    public var unsupportedConfig: [String]
    /// ssh_config options that were ignored, so nothing is ignored silently.
    public var ignoredConfig: [String]
    /// The hops to go through, first one first (from `jump`, else `ProxyJump`); empty for a
    /// direct connection. Each hop is complete (address, user, keys, its own known_hosts) and
    /// has no `jump` of its own: the whole route is here.
    public var jump: [HostSpec] = []
    /// How long the host's agent keeps collected attempts and how much disk its root may use.
    public var retention = RetentionPolicy()
    /// The GPU devices jobs may use (`gpus`: a count means 0…N-1); nil: what the agent detects.
    public var gpus: [String]? = nil
    /// Facts the agent collects: name → shell line whose output is the fact (`{"python": "python3 -V"}`).
    public var facts: [String: String] = [:]

    /// The hops' names, first one first.
    public var via: [String] { jump.map(\.name) }

    /// `address:port`, with ` via h1` (or ` via a,b`) when the host is reached through hops.
    public var route: String {
        let endpoint = address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
        return jump.isEmpty ? endpoint : "\(endpoint) via \(via.joined(separator: ","))"
    }

    /// The `[host]:port` form used by known_hosts for non-standard ports.
    public var knownHostsName: String {
        port == 22 ? address : "[\(address)]:\(port)"
    }
}

/// Where the inventory came from.
public enum InventorySource: Sendable, Equatable, CustomStringConvertible {
    case file(String)
    /// No file was found: the built-in single `local` host.
    case embeddedDefault

    public var description: String {
        switch self {
        case .file(let p): return p
        case .embeddedDefault: return "the built-in default (one local host)"
        }
    }
}

/// A loaded, validated inventory.
public struct Inventory: Sendable {
    public var source: InventorySource
    public var hosts: [HostSpec]
    /// The `coordinator` section: settings of the coordinators that use this inventory.
    public var coordinator: CoordinatorSection
    /// When a host is quarantined as a black hole (`coordinator.quarantine`, or the older
    /// `defaults.quarantine`; the built-in rules when absent); nil: never.
    public var quarantine: QuarantineSettings? { coordinator.quarantineSettings }

    public init(source: InventorySource, hosts: [HostSpec], coordinator: CoordinatorSection = CoordinatorSection()) {
        self.source = source
        self.hosts = hosts
        self.coordinator = coordinator
    }

    /// The host named `name`, if any.
    public func host(named name: String) -> HostSpec? {
        hosts.first { $0.name == name }
    }
}
