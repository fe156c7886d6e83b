import DroverInventory
import DroverSSH

extension HostSpec {
    /// The SSH connection parameters for this host, with its route through hops (`jump`).
    public var sshTarget: SSHTarget {
        SSHTarget(
            name: name, address: address, port: port, user: user, identities: identities,
            useAgent: !identityIsExplicit, knownHostsFile: knownHosts,
            acceptNewHostKeys: hostKeyPolicy == .acceptNew, connectTimeout: connectTimeout,
            unsupportedConfig: unsupportedConfig, jump: jump.map(\.sshTarget))
    }
}
