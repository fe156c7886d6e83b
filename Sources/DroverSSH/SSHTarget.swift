/// Everything needed to open one SSH connection.
public struct SSHTarget: Sendable {
    /// The name used in messages (the inventory host name).
    public var name: String
    public var address: String
    public var port: Int
    public var user: String
    /// Private key files to try after ssh-agent, in order.
    public var identities: [String]
    /// Whether to offer the keys held by ssh-agent (`SSH_AUTH_SOCK`) first.
    public var useAgent: Bool
    public var knownHostsFile: String
    public var acceptNewHostKeys: Bool
    /// Seconds for TCP connect, handshake and authentication together.
    public var connectTimeout: Double
    /// ssh_config options that make a direct connection wrong; connecting fails with them.
    public var unsupportedConfig: [String]
    /// The hops to go through, first one first (`ProxyJump a,b` gives `[a, b]`): the connection
    /// to this host is tunnelled through a `direct-tcpip` channel of a connection to the last
    /// hop, which is itself reached through the hops before it. Empty for a direct connection.
    /// The hops' own `jump` is ignored: the whole route is here.
    public var jump: [SSHTarget]

    public init(
        name: String, address: String, port: Int = 22, user: String, identities: [String] = [],
        useAgent: Bool = true, knownHostsFile: String, acceptNewHostKeys: Bool = false,
        connectTimeout: Double = 10, unsupportedConfig: [String] = [], jump: [SSHTarget] = []
    ) {
        self.name = name
        self.address = address
        self.port = port
        self.user = user
        self.identities = identities
        self.useAgent = useAgent
        self.knownHostsFile = knownHostsFile
        self.acceptNewHostKeys = acceptNewHostKeys
        self.connectTimeout = connectTimeout
        self.unsupportedConfig = unsupportedConfig
        self.jump = jump
    }

    /// `address:port`, with brackets for IPv6.
    public var endpoint: String {
        address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    /// The names of the hops, first one first (empty for a direct connection).
    public var via: [String] { jump.map(\.name) }

    /// `address:port`, followed by ` via h1` (or ` via a,b`) for a tunnelled connection.
    public var route: String {
        jump.isEmpty ? endpoint : "\(endpoint) via \(via.joined(separator: ","))"
    }

    /// The host name as known_hosts writes it: `addr`, or `[addr]:port` off port 22.
    public var knownHostsName: String {
        port == 22 ? address : "[\(address)]:\(port)"
    }
}

/// Tuning of one connection.
public struct SSHOptions: Sendable {
    /// Default time limit for an operation (channel open, SFTP request, …).
    public var operationTimeout: Double = 30
    /// Seconds between keepalives when the connection is idle.
    public var keepaliveInterval: Int = 5
    /// The connection is declared lost after this many intervals without any data from the server.
    public var keepaliveCountMax: Int = 3
    /// Bytes of output buffered per channel before reading pauses (flow control).
    public var channelBufferLimit: Int = 1 << 20

    public init() {}
}
