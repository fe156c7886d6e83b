import DroverCore
import DroverInventory
import DroverSSH
import Foundation

/// What the coordinator needs from a host, whether it is reached over SSH or is this machine.
public protocol HostSession: Sendable {
    /// Runs a POSIX shell line on the host.
    func run(_ command: String, timeout: Double) async throws(SSHError) -> ExecResult
    /// Copies a local file to the host, creating it with `mode`.
    func upload(file localPath: String, to remotePath: String, mode: Int) async throws(SSHError)
    /// Closes the session and waits until it is fully released.
    func shutdown() async
}

extension SSHConnection: HostSession {
    public func run(_ command: String, timeout: Double) async throws(SSHError) -> ExecResult {
        try await run(command, stdin: nil, timeout: timeout)
    }
}

/// This machine, without SSH (`transport: local`): shell lines run with /bin/sh.
public struct LocalSession: HostSession {
    public let name: String

    public init(name: String) { self.name = name }

    public func run(_ command: String, timeout: Double) async throws(SSHError) -> ExecResult {
        do {
            let r = try ChildProcess.run(["/bin/sh", "-c", command], timeout: timeout)
            let status: ExitStatus = r.signaled ? .signaled(String(r.status - 128)) : .exited(r.status)
            return ExecResult(stdout: r.stdout, stderr: r.stderr, status: status)
        } catch {
            throw SSHError(.localIO, host: name, operation: "run `\(command.prefix(60))`", message: "\(error)")
        }
    }

    public func upload(file localPath: String, to remotePath: String, mode: Int) async throws(SSHError) {
        let target = LocalUser.expand(remotePath)
        do {
            try AtomicFile.write(try LocalFile.read(localPath), to: target, mode: mode_t(mode))
        } catch {
            throw SSHError(.localIO, host: name, operation: "copy \(localPath) to \(target)", message: error.description)
        }
    }

    public func shutdown() async {}
}

extension HostSpec {
    /// Opens a session to the host: SSH, or this machine for `transport: local`.
    public func openSession(options: SSHOptions = SSHOptions()) async throws(SSHError) -> any HostSession {
        switch transport {
        case .local: return LocalSession(name: name)
        case .ssh: return try await SSHConnection.connect(to: sshTarget, options: options)
        }
    }
}
