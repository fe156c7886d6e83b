import CLibSSH2
import DroverCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let libraryInitialized: Bool = {
    // OpenSSL (under libssh2) frees its locks in an exit-time handler; a connection thread
    // still closing its session when the process exits would then crash. Ask OpenSSL, before
    // anything initialises it, not to register that handler (OPENSSL_INIT_NO_ATEXIT).
    typealias InitCrypto = @convention(c) (UInt64, UnsafeRawPointer?) -> Int32
    if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "OPENSSL_init_crypto") {
        _ = unsafeBitCast(symbol, to: InitCrypto.self)(0x0008_0000, nil)
    }
    return libssh2_init(0) == 0
}()

/// One SSH connection to a host, driven by its own thread, with an async API.
///
/// Many commands may run at once on one connection (each on its own channel); SFTP
/// requests run one at a time. When the connection breaks, every call fails with
/// `SSHError.Kind.connectionLost`; open a new connection to go on.
public final class SSHConnection: Sendable {
    let loop: SessionLoop
    public let target: SSHTarget
    public let options: SSHOptions

    private init(loop: SessionLoop) {
        self.loop = loop
        self.target = loop.target
        self.options = loop.options
    }

    deinit { loop.requestClose() }

    /// Connects, verifies the host key, and authenticates, all within `target.connectTimeout`.
    ///
    /// With `target.jump`, first connects to the last hop (through the hops before it, the same
    /// way), opens a `direct-tcpip` channel from it to the target, and runs the target's SSH
    /// session over that channel. Every hop's key is checked against its own known_hosts;
    /// errors name the hop (`h4 via h1: host key mismatch at h1: …`). The hop's connection
    /// belongs to this one: it is closed when this one closes or breaks.
    public static func connect(to target: SSHTarget, options: SSHOptions = SSHOptions()) async throws(SSHError) -> SSHConnection {
        _ = libraryInitialized
        // Without hops, or when ssh_config asks for something unsupported (refused at once,
        // before any hop is contacted).
        guard var hopTarget = target.jump.last, target.unsupportedConfig.isEmpty else {
            return try await start(SessionLoop(target: target, options: options))
        }
        hopTarget.jump = Array(target.jump.dropLast())
        let hop: SSHConnection
        do {
            hop = try await connect(to: hopTarget, options: options)
        } catch {
            throw error.reached(through: hopTarget.name, for: target.name, via: target.via)
        }
        let tunnel: Int32
        do {
            tunnel = try await hop.openTunnel(to: target.address, port: target.port, endpoint: target.endpoint, timeout: target.connectTimeout)
        } catch {
            await hop.shutdown()
            let hopName = hopTarget.name
            var message = "\(error.operation): \(error.message)"
            if error.code == LIBSSH2_ERROR_CHANNEL_FAILURE {
                message = error.message  // "h1 refused the tunnel to …"
            } else if error.kind == .timedOut && error.operation.hasPrefix("wait for the server") {
                message = "\(hopName) did not open the tunnel to \(target.endpoint) within \(formatSeconds(target.connectTimeout)) (connect_timeout): \(target.endpoint) may be down or unreachable from \(hopName)"
            }
            let e = SSHError(error.kind, host: target.name, operation: "open a tunnel", message: message, code: error.code, via: target.via, hop: hopName)
            throw e
        }
        return try await start(SessionLoop(target: target, options: options, tunnel: tunnel, hop: hop))
    }

    /// Runs the connection's thread: connects (see `SessionLoop.connect`), then the event loop.
    private static func start(_ loop: SessionLoop) async throws(SSHError) -> SSHConnection {
        let target = loop.target
        let once = Locked(false)
        let result: Result<Void, SSHError> = await withCheckedContinuation { (c: CheckedContinuation<Result<Void, SSHError>, Never>) in
            @Sendable func finish(_ r: Result<Void, SSHError>) -> Bool {
                let first = once.withLock { done -> Bool in
                    defer { done = true }
                    return !done
                }
                if first { c.resume(returning: r) }
                return first
            }
            let thread = Thread {
                do throws(SSHError) {
                    try loop.connect()
                } catch {
                    _ = finish(.failure(error))
                    loop.requestClose()
                    loop.run()
                    return
                }
                if finish(.success(())) {
                    loop.run()
                } else {
                    loop.requestClose()  // the caller gave up: close what we opened
                    loop.run()
                }
            }
            thread.name = "drover-ssh-\(target.name)"
            thread.stackSize = 1 << 20
            thread.start()
            // A guard beyond libssh2's own timeouts, for a name lookup that hangs.
            let grace = target.connectTimeout + 0.5
            Task.detached {
                try? await Task.sleep(for: .milliseconds(Int(grace * 1000)))
                _ = finish(.failure(SSHError(.timedOut, host: target.name, operation: "connect to \(target.endpoint)",
                    message: "no answer within \(formatSeconds(target.connectTimeout)) (connect_timeout)", via: target.via)))
            }
        }
        switch result {
        case .success: return SSHConnection(loop: loop)
        case .failure(let e): throw e
        }
    }

    /// Why the connection no longer works, or nil while it does.
    public var failure: SSHError? { loop.closedError }

    /// Whether calls can still succeed.
    public var isAlive: Bool { loop.closedError == nil }

    /// Whether libssh2 freed the session once the connection ended (after `shutdown()`); false
    /// while it runs, and for a session libssh2 kept (a leak, docs/reliability.md bug 7).
    public var sessionFreed: Bool { loop.sessionFreed }

    /// Starts disconnecting; calls in flight fail with `closed`.
    public func close() { loop.requestClose() }

    /// Disconnects and returns once the connection's thread has let go of libssh2 — call it
    /// before the process exits, or OpenSSL's exit-time cleanup can race with that thread.
    public func shutdown() async {
        loop.requestClose()
        await loop.waitUntilFinished()
        await loop.hop?.shutdown()
    }

    /// The connections this one goes through, first hop first (empty for a direct one).
    public var route: [String] { target.via }

    // MARK: Tunnels

    /// Opens a `direct-tcpip` channel from this connection's host to `address:port` and returns
    /// one end of a socketpair that carries it (the caller owns and closes that descriptor).
    /// The channel is pumped by this connection's thread until either side closes.
    func openTunnel(to address: String, port: Int, endpoint: String, timeout: Double) async throws(SSHError) -> Int32 {
        var fds: [Int32] = [-1, -1]
        #if canImport(Glibc)
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        #else
        let type = SOCK_STREAM
        #endif
        guard socketpair(AF_UNIX, type, 0, &fds) == 0 else {
            throw SSHError(.localIO, host: target.name, operation: "open a tunnel to \(endpoint)", message: SystemError.current("socketpair").description)
        }
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        #if canImport(Darwin)
        // No MSG_NOSIGNAL on macOS: a write to a closed tunnel must not kill the process.
        var on: Int32 = 1
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        #endif
        let inner = fds[0]
        let loop = self.loop
        let result: Result<Void, SSHError> = await withCheckedContinuation { (c: CheckedContinuation<Result<Void, SSHError>, Never>) in
            loop.submit(TunnelOperation(address: address, port: port, endpoint: endpoint, fd: fds[1], openTimeout: timeout) { c.resume(returning: $0) })
        }
        switch result {
        case .success: return inner
        case .failure(let e):
            closeDescriptor(inner)
            throw e
        }
    }

    // MARK: Commands

    /// Starts `command` (a remote shell line; build it with `ShellQuote.join` from an argv)
    /// and streams its output. `timeout` bounds the whole run; nil means none.
    public func exec(_ command: String, stdin: [UInt8]? = nil, timeout: Double? = nil) -> ExecStream {
        let loop = self.loop
        let buffer = ExecOutputBuffer(limit: options.channelBufferLimit, wake: { loop.wake() })
        loop.submit(ExecOperation(command: command, stdin: stdin, openTimeout: options.operationTimeout, timeout: timeout, output: buffer))
        return ExecStream(buffer: buffer)
    }

    /// Starts `command` with a stdin written while it runs (`input`; closing it sends EOF),
    /// and streams its output: a long-lived two-way channel.
    public func exec(_ command: String, input: StreamInput) -> ExecStream {
        let loop = self.loop
        let buffer = ExecOutputBuffer(limit: options.channelBufferLimit, wake: { loop.wake() })
        input.attach(wake: { loop.wake() })
        loop.submit(ExecOperation(command: command, stdin: nil, input: input, openTimeout: options.operationTimeout, timeout: nil, output: buffer))
        return ExecStream(buffer: buffer)
    }

    /// Measures one round trip on the established connection: opening and closing a
    /// channel, with no remote process. Returns seconds.
    public func ping() async throws(SSHError) -> Double {
        let loop = self.loop
        let start = ContinuousClock.now
        let buffer = ExecOutputBuffer(limit: options.channelBufferLimit, wake: { loop.wake() })
        loop.submit(ExecOperation(command: "", stdin: nil, openTimeout: options.operationTimeout, timeout: nil, output: buffer, openOnly: true))
        do {
            while try await buffer.next() != nil {}
        } catch let e as SSHError {
            throw e
        } catch {
            throw SSHError(.closed, host: target.name, operation: "ping", message: "cancelled")
        }
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Runs `command` to completion and collects its output (at most `outputLimit` bytes
    /// per stream are kept; the rest is read and dropped).
    public func run(_ command: String, stdin: [UInt8]? = nil, timeout: Double? = nil, outputLimit: Int = 16 << 20) async throws(SSHError) -> ExecResult {
        var out: [UInt8] = []
        var err: [UInt8] = []
        var status = ExitStatus.exited(-1)
        do {
            for try await event in exec(command, stdin: stdin, timeout: timeout ?? options.operationTimeout) {
                switch event {
                case .stdout(let b): if out.count < outputLimit { out += b.prefix(outputLimit - out.count) }
                case .stderr(let b): if err.count < outputLimit { err += b.prefix(outputLimit - err.count) }
                case .exit(let s): status = s
                }
            }
        } catch let e as SSHError {
            throw e
        } catch {
            throw SSHError(.closed, host: target.name, operation: "run command", message: "cancelled")
        }
        return ExecResult(stdout: out, stderr: err, status: status)
    }

    /// Runs an argv with no shell interpretation of its arguments.
    public func run(argv: [String], stdin: [UInt8]? = nil, timeout: Double? = nil) async throws(SSHError) -> ExecResult {
        try await run(ShellQuote.join(argv), stdin: stdin, timeout: timeout)
    }

    // MARK: SFTP

    func sftp(_ request: SFTPRequest) async throws(SSHError) -> SFTPResult {
        let loop = self.loop
        let timeout = options.operationTimeout
        do {
            return try await withCheckedThrowingContinuation { c in
                loop.submit(SFTPOperation(request, idleTimeout: timeout, continuation: c))
            }
        } catch let e as SSHError {
            throw e
        } catch {
            throw SSHError(.protocolError, host: target.name, operation: "sftp", message: "\(error)")
        }
    }

    /// Facts about a remote path, or nil when it does not exist.
    public func stat(_ path: String) async throws(SSHError) -> RemoteFileInfo? {
        do {
            if case .info(let info) = try await sftp(.stat(path)) { return info }
            return nil
        } catch where error.kind == .noSuchFile {
            return nil
        }
    }

    /// Creates a directory and its missing parents (like `mkdir -p`).
    public func makeDirectories(_ path: String, mode: Int = 0o700) async throws(SSHError) {
        var prefix = path.hasPrefix("/") ? "" : nil as String?
        var built: [String] = []
        for part in path.split(separator: "/") {
            built.append(String(part))
            let current = (prefix ?? "") + (path.hasPrefix("/") ? "/" : "") + built.joined(separator: "/")
            if part == "~" || part == "$HOME" || part == "." { continue }
            if let info = try await stat(current) {
                if !info.isDirectory {
                    throw SSHError(.sftpFailed, host: target.name, operation: "mkdir \(path)", message: "\(current) exists and is not a directory")
                }
                continue
            }
            do {
                _ = try await sftp(.mkdir(current, mode: mode))
            } catch {
                // Lost a race with another creator: fine if it is a directory now.
                if let info = try await stat(current), info.isDirectory { continue }
                throw error
            }
        }
        prefix = nil
    }

    /// Uploads a local file.
    public func upload(file localPath: String, to remotePath: String, mode: Int = 0o600) async throws(SSHError) {
        _ = try await sftp(.upload(source: .file(localPath), to: remotePath, mode: mode))
    }

    /// Uploads bytes.
    public func upload(_ bytes: [UInt8], to remotePath: String, mode: Int = 0o600) async throws(SSHError) {
        _ = try await sftp(.upload(source: .bytes(bytes), to: remotePath, mode: mode))
    }

    /// Downloads a remote file to a local path (written to `<path>.drover-partial`, then renamed).
    public func download(_ remotePath: String, to localPath: String) async throws(SSHError) {
        _ = try await sftp(.download(remotePath, destination: .file(localPath)))
    }

    /// Reads a small remote file into memory (at most `limit` bytes).
    public func readFile(_ remotePath: String, limit: Int = 4 << 20) async throws(SSHError) -> [UInt8] {
        if case .bytes(let b) = try await sftp(.download(remotePath, destination: .memory(limit: limit))) { return b }
        return []
    }

    /// Removes a remote file.
    public func remove(_ remotePath: String) async throws(SSHError) {
        _ = try await sftp(.unlink(remotePath))
    }

    /// Replaces a remote file atomically: upload to a temporary name in the same folder, then
    /// `mv -f` over the target (libssh2's SFTP rename does not overwrite).
    public func replaceFile(_ remotePath: String, with bytes: [UInt8], mode: Int = 0o600) async throws(SSHError) {
        try await replace(remotePath) { (tmp: String) async throws(SSHError) in try await upload(bytes, to: tmp, mode: mode) }
    }

    /// Replaces a remote file atomically with a local file's content.
    public func replaceFile(_ remotePath: String, withFile localPath: String, mode: Int = 0o600) async throws(SSHError) {
        try await replace(remotePath) { (tmp: String) async throws(SSHError) in try await upload(file: localPath, to: tmp, mode: mode) }
    }

    private func replace(_ remotePath: String, upload: (String) async throws(SSHError) -> Void) async throws(SSHError) {
        let slash = remotePath.lastIndex(of: "/")
        let dir = slash.map { String(remotePath[..<$0]) } ?? "."
        let base = slash.map { String(remotePath[remotePath.index(after: $0)...]) } ?? remotePath
        let tmp = "\(dir)/.\(base).drover-tmp-\(UInt32.random(in: 0...UInt32.max))"
        try await upload(tmp)
        let result = try await run("mv -f -- \(RemotePath.shell(tmp)) \(RemotePath.shell(remotePath))")
        if result.status != .exited(0) {
            try? await remove(tmp)
            throw SSHError(.sftpFailed, host: target.name, operation: "replace \(remotePath)",
                message: "mv failed (\(result.status)): \(result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}

/// Remote paths in shell commands.
public enum RemotePath {
    /// Quotes a remote path for the remote shell, keeping a leading `~/` or `$HOME/` expandable.
    public static func shell(_ path: String) -> String {
        if path == "~" || path == "$HOME" { return "\"$HOME\"" }
        if path.hasPrefix("~/") { return "\"$HOME\"/" + ShellQuote.quote(String(path.dropFirst(2))) }
        if path.hasPrefix("$HOME/") { return "\"$HOME\"/" + ShellQuote.quote(String(path.dropFirst(6))) }
        return ShellQuote.quote(path)
    }
}

/// close(2), out of reach of `SSHConnection.close()`.
private func closeDescriptor(_ fd: Int32) {
    close(fd)
}
