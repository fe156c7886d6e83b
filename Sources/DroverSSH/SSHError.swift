/// A failed SSH operation: what went wrong, on which host, while doing what.
///
/// In the style of swift-subprocess's `SubprocessError`: a `kind` to switch on, and a
/// description that names the host, the operation and what the user can do about it.
public struct SSHError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Name resolution failed or no route to the host.
        case unreachable
        /// The TCP connection was refused (no sshd on that port?).
        case connectionRefused
        /// Connect, handshake, authentication or an operation exceeded its time limit.
        case timedOut
        /// The SSH handshake failed (not an SSH server, or no common algorithms).
        case handshakeFailed
        /// The host presented a key different from the one in known_hosts.
        case hostKeyMismatch
        /// The host key is not in known_hosts and the policy is `strict`.
        case unknownHostKey
        /// The host key is marked `@revoked` in known_hosts.
        case revokedHostKey
        /// No offered key was accepted.
        case authenticationRefused
        /// An RSA key was refused because libssh2 signs RSA with SHA-1 only.
        case rsaSHA1Refused
        /// ~/.ssh/config asks for something Drover cannot do (e.g. ProxyCommand).
        case unsupportedConfig
        /// The connection broke (peer closed, reset, or no answer to keepalives).
        case connectionLost
        /// The connection was closed by this side.
        case closed
        /// The server refused to open a channel or start a command.
        case channelFailed
        /// The user's login shell did not run Drover's command (missing shell, an rc file that exits).
        case loginShell
        /// The remote path does not exist.
        case noSuchFile
        /// The server refused an SFTP request (permission, disk full, …).
        case sftpFailed
        /// A local file could not be read or written.
        case localIO
        /// libssh2 reported an error not covered above.
        case protocolError
    }

    public var kind: Kind
    /// The inventory name of the host (or its address when it has none).
    public var host: String
    /// What was being attempted, e.g. "connect to 10.250.0.11:22" or "upload ~/.drover/agent".
    public var operation: String
    /// The detail: why it failed and what to do.
    public var message: String
    /// The libssh2 error code, when libssh2 gave one.
    public var code: Int32?
    /// The hops of a tunnelled connection, first one first (empty for a direct connection).
    public var via: [String]
    /// The hop where it failed (its connection, host key, authentication or tunnel), or nil
    /// when it failed at `host` itself.
    public var hop: String?

    public init(_ kind: Kind, host: String, operation: String, message: String, code: Int32? = nil, via: [String] = [], hop: String? = nil) {
        self.kind = kind
        self.host = host
        self.operation = operation
        self.message = message
        self.code = code
        self.via = via
        self.hop = hop
    }

    /// `h1: operation: message`, or `h4 via h1: operation: message` through hops.
    public var description: String {
        "\(route): \(operation): \(message)"
    }

    /// The host, followed by ` via h1` (or ` via a,b`) through hops.
    public var route: String {
        via.isEmpty ? host : "\(host) via \(via.joined(separator: ","))"
    }

    /// This error, raised while reaching the hop `hopName` of a connection to `target`, as an
    /// error of that connection: `h4 via h1: host key mismatch at h1: verify host key of …`.
    func reached(through hopName: String, for target: String, via route: [String]) -> SSHError {
        if let hop {
            // Already named the hop where it failed (a longer chain): keep that.
            return SSHError(kind, host: target, operation: operation, message: message, code: code, via: route, hop: hop)
        }
        return SSHError(kind, host: target, operation: "\(shortReason) at \(hopName)", message: "\(operation): \(message)",
                        code: code, via: route, hop: hopName)
    }

    /// A short state word for tables: "unreachable", "timed out", "auth refused", …
    public var shortReason: String {
        switch kind {
        case .unreachable: return "unreachable"
        case .connectionRefused: return "refused"
        case .timedOut: return "timed out"
        case .handshakeFailed: return "handshake failed"
        case .hostKeyMismatch: return "host key mismatch"
        case .unknownHostKey: return "unknown host key"
        case .revokedHostKey: return "host key revoked"
        case .authenticationRefused, .rsaSHA1Refused: return "auth refused"
        case .unsupportedConfig: return "unsupported config"
        case .connectionLost: return "connection lost"
        case .closed: return "closed"
        case .channelFailed: return "channel failed"
        case .loginShell: return "login shell failed"
        case .noSuchFile: return "no such file"
        case .sftpFailed: return "sftp failed"
        case .localIO: return "local I/O error"
        case .protocolError: return "protocol error"
        }
    }
}
