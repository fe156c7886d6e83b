import CLibSSH2
import DroverCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one pass of an operation achieved.
enum Step {
    /// It moved forward; run another pass before sleeping.
    case progressed
    /// It waits for the socket (libssh2 said EAGAIN).
    case waiting
    /// It waits only for its own descriptor (`pollRequest`), not for the session's socket.
    case idle
    /// It is complete and leaves the loop.
    case done
}

/// Session-wide libssh2 state machines that only one operation may drive at a time.
enum ExclusiveResource: Hashable {
    /// `libssh2_channel_open_ex` and `libssh2_sftp_init` keep their state in the session.
    case channelOpen
    /// SFTP requests share the SFTP channel's state.
    case sftp
}

/// An operation driven by the connection thread in non-blocking steps.
protocol LoopOperation: AnyObject {
    /// A resource this operation must hold exclusively during its current step, if any.
    var exclusive: ExclusiveResource? { get }
    /// Whether the consumer's buffer is full, so reading must pause.
    var throttled: Bool { get }
    /// When the operation fails with `timedOut`, if ever.
    var deadline: ContinuousClock.Instant? { get }
    /// Runs one non-blocking step on the connection thread.
    func step(_ loop: SessionLoop) throws(SSHError) -> Step
    /// Ends the operation with an error, resuming its caller.
    func fail(_ error: SSHError, loop: SessionLoop)
    /// The deadline passed. Returns true when the operation was ended cleanly (its channel
    /// is being closed), false when libssh2's session state is now unknown.
    func timeOut(loop: SessionLoop) -> Bool
    /// A descriptor of its own to poll with the session's socket while it waits, if any.
    var pollRequest: (fd: Int32, events: Int16)? { get }
}

extension LoopOperation {
    var pollRequest: (fd: Int32, events: Int16)? { nil }
}

/// Owns one libssh2 session and the thread that drives it.
///
/// libssh2 sessions must be driven by one thread at a time, so every libssh2 call for
/// this connection happens here; other threads hand over operations through a locked
/// queue and a wake-up pipe.
final class SessionLoop: Sendable {
    let target: SSHTarget
    let options: SSHOptions
    /// The connection to the last hop that carries this one (nil for a direct connection).
    /// Closed when this loop ends, so every tunnelled connection owns its hop's connection.
    let hop: SSHConnection?
    /// The hops' names, for messages.
    let via: [String]

    // Touched only on the loop thread once running (set up by `init` before it starts):
    // confined to that thread, which the compiler cannot see.
    nonisolated(unsafe) var session: OpaquePointer?
    nonisolated(unsafe) var socketFD: Int32 = -1
    nonisolated(unsafe) var sftp: OpaquePointer?
    nonisolated(unsafe) private var operations: [LoopOperation] = []
    nonisolated(unsafe) private var outboundOwner: ObjectIdentifier?

    private struct Shared {
        var incoming: [LoopOperation] = []
        var closeRequested = false
        var closedError: SSHError?
        /// Set when the thread has freed the session and closed the socket.
        var finished = false
        /// Whether libssh2 freed the session (false also before the thread finished).
        var sessionFreed = false
        var finishWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let shared = Locked(Shared())
    private let wakeRead: Int32
    private let wakeWrite: Int32

    /// `tunnel` is this side of a socketpair whose other side `hop` pumps to the target.
    init(target: SSHTarget, options: SSHOptions, tunnel: Int32 = -1, hop: SSHConnection? = nil) {
        self.target = target
        self.options = options
        self.hop = hop
        self.via = target.via
        self.socketFD = tunnel
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
        }
        (wakeRead, wakeWrite) = (fds[0], fds[1])
    }

    deinit {
        if wakeRead >= 0 { close(wakeRead) }
        if wakeWrite >= 0 { close(wakeWrite) }
    }

    /// An error naming this host.
    func error(_ kind: SSHError.Kind, _ operation: String, _ message: String, code: Int32? = nil) -> SSHError {
        SSHError(kind, host: target.name, operation: operation, message: message, code: code, via: via)
    }

    /// The connection broke: through a hop that failed, the error names that hop.
    func lost(_ operation: String, _ message: String, code: Int32? = nil) -> SSHError {
        var e = error(.connectionLost, operation, message, code: code)
        if let hop, hop.failure != nil { e.hop = hop.target.name }
        return e
    }

    /// For a tunnelled connection whose socket broke: what happened to the hop, if it failed.
    var hopNote: String {
        guard let hop else { return "" }
        if let f = hop.failure { return "; the connection to \(hop.target.name) failed: \(f.operation): \(f.message)" }
        return ""
    }

    /// libssh2's last error as an `SSHError`.
    func lastError(_ operation: String, fallback kind: SSHError.Kind = .protocolError) -> SSHError {
        var messagePointer: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        let code = session.map { libssh2_session_last_error($0, &messagePointer, &length, 0) } ?? 0
        let text = messagePointer.map { String(cString: $0) } ?? "unknown libssh2 error"
        return classify(code: code, operation: operation, message: text, fallback: kind)
    }

    func classify(code: Int32, operation: String, message: String, fallback: SSHError.Kind) -> SSHError {
        switch code {
        case LIBSSH2_ERROR_SOCKET_SEND, LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_SOCKET_DISCONNECT,
             LIBSSH2_ERROR_SOCKET_TIMEOUT, LIBSSH2_ERROR_BANNER_RECV:
            return lost(operation, "the connection broke (\(message))\(hopNote)", code: code)
        case LIBSSH2_ERROR_TIMEOUT:
            return error(.timedOut, operation, "no answer in time (\(message))", code: code)
        default:
            return error(fallback, operation, "\(message) (libssh2 error \(code))", code: code)
        }
    }

    // MARK: - Hand-over from other threads

    /// Queues an operation; fails it at once when the connection is closed.
    func submit(_ op: LoopOperation) {
        let closed: SSHError? = shared.withLock { s in
            if let e = s.closedError { return e }
            if s.closeRequested { return error(.closed, "use connection", "the connection was closed") }
            s.incoming.append(op)
            return nil
        }
        if let closed { op.fail(closed, loop: self) } else { wake() }
    }

    /// Asks the loop to disconnect and exit.
    func requestClose() {
        shared.withLock { $0.closeRequested = true }
        wake()
    }

    /// Why the connection is unusable, or nil while it works.
    var closedError: SSHError? { shared.withLock { $0.closedError } }
    /// Whether libssh2 freed the session when the connection ended.
    var sessionFreed: Bool { shared.withLock { $0.sessionFreed } }

    func wake() {
        var byte: UInt8 = 1
        _ = posixWrite(wakeWrite, &byte, 1)
    }

    private func drainWake() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while buffer.withUnsafeMutableBytes({ posixRead(wakeRead, $0.baseAddress, 64) }) > 0 {}
    }

    // MARK: - The loop

    /// Runs until closed or the connection breaks; the session is already authenticated.
    func run() {
        guard let session else {
            shutdown(error(.closed, "use connection", "the connection was closed"))
            markFinished()
            return
        }
        libssh2_session_set_blocking(session, 0)
        libssh2_keepalive_config(session, 0, UInt32(options.keepaliveInterval))
        var ending: SSHError?
        while ending == nil {
            let (newOps, closeRequested) = shared.withLock { s -> ([LoopOperation], Bool) in
                defer { s.incoming.removeAll() }
                return (s.incoming, s.closeRequested)
            }
            operations += newOps
            if closeRequested {
                ending = error(.closed, "use connection", "the connection was closed")
                break
            }
            var nextKeepalive: Int32 = Int32(options.keepaliveInterval)
            if outboundOwner == nil {
                let rc = libssh2_keepalive_send(session, &nextKeepalive)
                if rc != 0 && rc != LIBSSH2_ERROR_EAGAIN {
                    ending = lastError("send keepalive", fallback: .connectionLost)
                    break
                }
            }
            if let fatal = expireDeadlines() {
                shared.withLock { $0.closedError = fatal }
                ending = fatal
                break
            }

            var progressed = false
            var wantIn = false
            var wantOut = false
            var held = Set<ExclusiveResource>()
            var extraPolls: [pollfd] = []
            for op in operations {
                if let owner = outboundOwner, owner != ObjectIdentifier(op) { continue }
                if op.throttled { continue }
                if let r = op.exclusive {
                    if held.contains(r) { continue }
                    held.insert(r)
                }
                do {
                    switch try op.step(self) {
                    case .progressed:
                        progressed = true
                        if outboundOwner == ObjectIdentifier(op) { outboundOwner = nil }
                    case .waiting:
                        let directions = libssh2_session_block_directions(session)
                        if directions & LIBSSH2_SESSION_BLOCK_INBOUND != 0 { wantIn = true }
                        if directions & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 {
                            wantOut = true
                            outboundOwner = ObjectIdentifier(op)
                        } else if outboundOwner == ObjectIdentifier(op) {
                            outboundOwner = nil
                        }
                    case .idle:
                        if outboundOwner == ObjectIdentifier(op) { outboundOwner = nil }
                    case .done:
                        progressed = true
                        remove(op)
                    }
                    if let p = op.pollRequest { extraPolls.append(pollfd(fd: p.fd, events: p.events, revents: 0)) }
                } catch {
                    remove(op)
                    // A broken connection is marked before any caller hears of it, so a caller
                    // that sees the error also sees `isAlive == false`.
                    if error.kind == .connectionLost { shared.withLock { $0.closedError = error } }
                    op.fail(error, loop: self)
                    progressed = true
                    if error.kind == .connectionLost { ending = error; break }
                }
            }
            if ending != nil || progressed { continue }
            if let fatal = waitForSocket(wantIn: wantIn, wantOut: wantOut, keepaliveIn: nextKeepalive, extra: extraPolls) {
                ending = fatal
            }
        }
        shutdown(ending ?? error(.closed, "use connection", "the connection was closed"))
        markFinished()
    }

    /// Records that the thread is done with libssh2 and wakes whoever waits for that.
    func markFinished() {
        let waiters = shared.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.finished = true
            defer { s.finishWaiters.removeAll() }
            return s.finishWaiters
        }
        for w in waiters { w.resume() }
    }

    /// Returns once the thread has freed the session (call `requestClose` first).
    func waitUntilFinished() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = shared.withLock { s -> Bool in
                if s.finished { return true }
                s.finishWaiters.append(c)
                return false
            }
            if done { c.resume() }
        }
    }

    private func remove(_ op: LoopOperation) {
        operations.removeAll { $0 === op }
        if outboundOwner == ObjectIdentifier(op) { outboundOwner = nil }
    }

    /// Fails operations whose deadline passed; returns an error when that leaves the session unusable.
    private func expireDeadlines() -> SSHError? {
        let now = ContinuousClock.now
        for op in operations {
            guard let d = op.deadline, d <= now else { continue }
            if !op.timeOut(loop: self) {
                return error(.timedOut, "wait for the server", "an SSH request (\(op)) got no answer within its time limit; the connection is closed and can be reopened")
            }
        }
        return nil
    }

    /// Sleeps in poll(2) until the socket is ready, a wake-up arrives, or a timer is due.
    /// `extra`: descriptors of operations that wait on them (a tunnel's socketpair end).
    private func waitForSocket(wantIn: Bool, wantOut: Bool, keepaliveIn: Int32, extra: [pollfd] = []) -> SSHError? {
        var timeoutMs = Int(max(1, keepaliveIn)) * 1000
        let now = ContinuousClock.now
        for op in operations {
            if let d = op.deadline {
                let ms = (d - now).wholeMilliseconds + 1
                timeoutMs = min(timeoutMs, max(0, ms))
            }
        }
        var events: Int16 = 0
        if wantIn { events |= Int16(POLLIN) }
        if wantOut { events |= Int16(POLLOUT) }
        #if os(Linux)
        events |= pollReadHangUp
        #endif
        var fds = [
            pollfd(fd: socketFD, events: events, revents: 0),
            pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
        ] + extra
        let rc = poll(&fds, nfds_t(fds.count), Int32(timeoutMs))
        if rc < 0 && currentErrno() != EINTR {
            return error(.connectionLost, "poll", SystemError.current("poll").description)
        }
        if fds[1].revents != 0 { drainWake() }
        var broken = Int16(POLLERR | POLLHUP | POLLNVAL)
        #if os(Linux)
        broken |= pollReadHangUp
        #endif
        // When an operation reads, libssh2 itself reports the break with the details.
        if fds[0].revents & broken != 0 && !wantIn {
            return lost("wait for the server", socketErrorText())
        }
        return nil
    }

    private func socketErrorText() -> String {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(socketFD, SOL_SOCKET, SO_ERROR, &err, &len)
        if let hop { return "the tunnel through \(hop.target.name) closed\(hopNote)" }
        if err == 0 { return "the server closed the connection" }
        return "the connection broke: \(String(cString: strerror(err)))"
    }

    /// Fails every operation, frees libssh2 state and closes the socket.
    private func shutdown(_ reason: SSHError) {
        let pending = shared.withLock { s -> [LoopOperation] in
            if s.closedError == nil { s.closedError = reason }
            defer { s.incoming.removeAll() }
            return s.incoming
        }
        for op in operations + pending { op.fail(reason, loop: self) }
        operations.removeAll()
        if let session {
            // Best effort, bounded: a clean goodbye when the connection still works.
            if reason.kind == .closed {
                libssh2_session_set_blocking(session, 1)
                libssh2_session_set_timeout(session, 1000)
                if let sftp { libssh2_sftp_shutdown(sftp) }
                libssh2_session_disconnect_ex(session, SSH_DISCONNECT_BY_APPLICATION, "drover closing", "")
            }
            // Nothing more is said: with the socket shut, libssh2 sees the peer gone and frees
            // every channel without sending its close and waiting for the peer's. On a dead
            // host (a link closed or broken by a power-off) it otherwise waited, returned
            // EAGAIN or a timeout, and kept the whole session: ~46 KiB leaked per power-off,
            // found by the hour soak (docs/reliability.md, bug 7).
            if socketFD >= 0 { Self.shutDownSocket(socketFD) }
            var freed = libssh2_session_free(session)
            for _ in 0..<3 where freed == LIBSSH2_ERROR_EAGAIN { freed = libssh2_session_free(session) }
            let ok = freed == 0
            shared.withLock { $0.sessionFreed = ok }
        }
        sftp = nil
        session = nil
        if socketFD >= 0 { close(socketFD) }
        socketFD = -1
        // The hop's connection carried only this one.
        hop?.close()
    }
}

extension SessionLoop {
    /// `shutdown(fd, SHUT_RDWR)`: both directions of the socket end, the descriptor stays.
    static func shutDownSocket(_ fd: Int32) {
        #if canImport(Glibc)
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
        #elseif canImport(Darwin)
        _ = Darwin.shutdown(fd, SHUT_RDWR)
        #endif
    }
}

#if os(Linux)
/// POLLRDHUP (the peer shut its side), hidden by Glibc's module without _GNU_SOURCE.
private let pollReadHangUp: Int16 = 0x2000
#endif
