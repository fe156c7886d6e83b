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
    /// Copies a file of the host to a local path.
    func download(_ remotePath: String, to localPath: String) async throws(SSHError)
    /// Starts a shell line and streams its output as it comes (the connection's flow control
    /// holds the remote side back while the consumer is slow).
    func stream(_ command: String, stdin: [UInt8]?) throws(SSHError) -> HostStream
    /// Starts a shell line whose stdin is written while it runs (`input`), streaming its output.
    func stream(_ command: String, input: StreamInput) throws(SSHError) -> HostStream
    /// Closes the session and waits until it is fully released.
    func shutdown() async
}

/// A running remote command's output, in order; `cancel` closes its channel.
public struct HostStream: AsyncSequence, Sendable {
    public typealias Element = ExecEvent
    let nextEvent: @Sendable () async throws -> ExecEvent?
    let stop: @Sendable () -> Void

    public struct AsyncIterator: AsyncIteratorProtocol {
        let nextEvent: @Sendable () async throws -> ExecEvent?
        public mutating func next() async throws -> ExecEvent? { try await nextEvent() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(nextEvent: nextEvent) }

    /// Closes the channel; the remote command sees its output closed.
    public func cancel() { stop() }
}

extension SSHConnection: HostSession {
    public func run(_ command: String, timeout: Double) async throws(SSHError) -> ExecResult {
        try await run(command, stdin: nil, timeout: timeout)
    }

    public func stream(_ command: String, stdin: [UInt8]?) throws(SSHError) -> HostStream {
        let exec = exec(command, stdin: stdin)
        return HostStream(nextEvent: { try await exec.next() }, stop: { exec.cancel() })
    }

    public func stream(_ command: String, input: StreamInput) throws(SSHError) -> HostStream {
        let exec = exec(command, input: input)
        return HostStream(nextEvent: { try await exec.next() }, stop: { exec.cancel() })
    }
}

/// This machine, without SSH (`transport: local`): shell lines run with /bin/sh.
///
/// A class, so that a session keeps its identity when compared as `AnyObject` (HostLink does).
public final class LocalSession: HostSession {
    public let name: String

    public init(name: String) { self.name = name }

    public func run(_ command: String, timeout: Double) async throws(SSHError) -> ExecResult {
        do {
            let r = try ChildProcess.run(["/bin/sh", "-c", command], timeout: timeout)
            let status: ExitStatus = r.signaled ? .signaled(signalName(r.status - 128)) : .exited(r.status)
            return ExecResult(stdout: r.stdout, stderr: r.stderr, status: status)
        } catch {
            throw SSHError(.localIO, host: name, operation: "run `\(command.prefix(60))`", message: "\(error)")
        }
    }

    public func download(_ remotePath: String, to localPath: String) async throws(SSHError) {
        let source = LocalUser.expand(remotePath)
        do {
            try AtomicFile.write(try LocalFile.read(source), to: localPath, mode: 0o644, durable: false)
        } catch {
            throw SSHError(.localIO, host: name, operation: "copy \(source) to \(localPath)", message: error.description)
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

    /// Runs the line with /bin/sh on this machine (see `LocalStream`).
    public func stream(_ command: String, stdin: [UInt8]?) throws(SSHError) -> HostStream {
        try LocalStream(command, stdin: stdin, host: name).stream
    }

    public func stream(_ command: String, input: StreamInput) throws(SSHError) -> HostStream {
        try LocalStream(command, stdin: nil, live: input, host: name).stream
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
