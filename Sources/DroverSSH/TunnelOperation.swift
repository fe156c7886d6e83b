import CLibSSH2
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let pumpChunk = 64 * 1024

/// Carries a connection to another host through this connection (`ProxyJump`): opens a
/// `direct-tcpip` channel to `address:port` and pumps bytes between it and one end of a
/// socketpair, whose other end is the socket of the inner connection's libssh2 session.
///
/// Runs on the hop's connection thread like every call on the hop's session; the loop polls
/// the socketpair end too (`pollRequest`), so it wakes when the inner session writes.
final class TunnelOperation: LoopOperation, CustomStringConvertible {
    private enum Phase { case opening, pumping, closing, freeing, finished }
    /// A libssh2 call that stopped half-way through sending: it must be repeated first.
    private enum PendingCall { case read, write }

    let address: String
    let port: Int
    /// `address:port` for messages.
    let endpoint: String
    /// This side of the socketpair (non-blocking), closed when the tunnel ends.
    private var fd: Int32
    private var phase = Phase.opening
    private var channel: OpaquePointer?
    private let openDeadline: ContinuousClock.Instant
    /// Called once: when the channel is open, or when opening it failed.
    private var opened: ((Result<Void, SSHError>) -> Void)?

    /// Bytes read from the channel, not yet written to the socketpair.
    private var toInner: [UInt8] = []
    private var toInnerOffset = 0
    /// Bytes read from the socketpair, not yet written to the channel.
    private var toChannel: [UInt8] = []
    private var toChannelOffset = 0
    private var channelEOF = false
    private var innerEOF = false
    private var pending: PendingCall?
    private var wantEvents: Int16 = 0
    private var buffer = [UInt8](repeating: 0, count: pumpChunk)

    init(address: String, port: Int, endpoint: String, fd: Int32, openTimeout: Double, opened: @escaping (Result<Void, SSHError>) -> Void) {
        self.address = address
        self.port = port
        self.endpoint = endpoint
        self.fd = fd
        self.openDeadline = ContinuousClock.now + .milliseconds(Int(openTimeout * 1000))
        self.opened = opened
    }

    deinit { closeSocket() }

    var description: String { "tunnel to \(endpoint)" }
    var exclusive: ExclusiveResource? { phase == .opening ? .channelOpen : nil }
    var throttled: Bool { false }
    var deadline: ContinuousClock.Instant? { phase == .opening ? openDeadline : nil }
    var pollRequest: (fd: Int32, events: Int16)? {
        fd >= 0 && wantEvents != 0 && phase == .pumping ? (fd, wantEvents) : nil
    }

    func timeOut(loop: SessionLoop) -> Bool {
        // Only opening has a deadline, and the session's channel-open state is then mid-way.
        false
    }

    func fail(_ error: SSHError, loop: SessionLoop) {
        report(.failure(error))
        closeSocket()
    }

    private func report(_ result: Result<Void, SSHError>) {
        let callback = opened
        opened = nil
        callback?(result)
    }

    private func closeSocket() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    func step(_ loop: SessionLoop) throws(SSHError) -> Step {
        guard let session = loop.session else { throw loop.error(.closed, "carry a tunnel", "the connection is closed") }
        switch phase {
        case .opening:
            guard let ch = libssh2_channel_direct_tcpip_ex(session, address, Int32(port), "127.0.0.1", 0) else {
                if libssh2_session_last_errno(session) == LIBSSH2_ERROR_EAGAIN { return .waiting }
                throw refusal(loop)
            }
            channel = ch
            phase = .pumping
            report(.success(()))
            return .progressed
        case .pumping:
            return try pump(loop, session)
        case .closing:
            let rc = libssh2_channel_close(channel)
            if rc == LIBSSH2_ERROR_EAGAIN { return .waiting }
            phase = .freeing
            return .progressed
        case .freeing:
            let rc = libssh2_channel_free(channel)
            if rc == LIBSSH2_ERROR_EAGAIN { return .waiting }
            channel = nil
            phase = .finished
            closeSocket()
            return .done
        case .finished:
            return .done
        }
    }

    /// Why the hop would not open the channel, naming the hop and the destination.
    private func refusal(_ loop: SessionLoop) -> SSHError {
        var e = loop.lastError("open a tunnel to \(endpoint)", fallback: .channelFailed)
        guard e.code == LIBSSH2_ERROR_CHANNEL_FAILURE else { return e }
        let reason: String
        if let open = e.message.range(of: "("), let close = e.message.range(of: ")", range: open.upperBound..<e.message.endIndex) {
            reason = String(e.message[open.upperBound..<close.lowerBound])
        } else {
            reason = "channel open failure"
        }
        let hop = loop.target.name
        switch reason {
        case "administratively prohibited":
            e.message = "\(hop) refused the tunnel to \(endpoint) (administratively prohibited): allow it on \(hop) with `AllowTcpForwarding yes` (or a `PermitOpen` that lists \(endpoint)) in sshd_config"
        case "connect failed":
            e.kind = .unreachable
            e.message = "\(hop) refused the tunnel to \(endpoint) (connect failed): \(hop) could not connect there; the host may be down, or the address or port is wrong as seen from \(hop)"
        default:
            e.message = "\(hop) refused the tunnel to \(endpoint) (\(reason))"
        }
        return e
    }

    /// Moves bytes both ways until neither side can go on without waiting.
    private func pump(_ loop: SessionLoop, _ session: OpaquePointer) throws(SSHError) -> Step {
        wantEvents = 0
        channelWaiting = false
        var moved = false
        // A send that stopped half-way must be finished by the same call before any other.
        if let call = pending {
            pending = nil
            let s = call == .write ? try toChannelStep(loop, session) : try toInnerStep(loop, session)
            if s == .waiting { return .waiting }
            moved = true
        }
        var innerStalled = false
        var channelStalled = false
        for _ in 0..<32 where !(innerStalled && channelStalled) {
            if !innerStalled {
                switch try toInnerStep(loop, session) {
                case .progressed: moved = true
                case .waiting: if pending != nil { return .waiting }; innerStalled = true
                default: innerStalled = true
                }
            }
            if !channelStalled {
                switch try toChannelStep(loop, session) {
                case .progressed: moved = true
                case .waiting: if pending != nil { return .waiting }; channelStalled = true
                default: channelStalled = true
                }
            }
        }
        if innerEOF && toChannelOffset == toChannel.count {
            // The inner session closed its socket: nothing more will come or be read.
            phase = .closing
            return .progressed
        }
        if moved { return .progressed }
        // Waiting on the session socket (a channel read said EAGAIN) or only on the socketpair.
        return channelWaiting ? .waiting : .idle
    }

    /// Whether the last channel call of this pass said EAGAIN (the session socket must be polled).
    private var channelWaiting = false

    /// One move from the channel to the socketpair. `.waiting`: the channel has nothing (or
    /// a send of a window adjustment stopped half-way, then `pending` is set); `.idle`: the
    /// socketpair is full or the channel ended.
    private func toInnerStep(_ loop: SessionLoop, _ session: OpaquePointer) throws(SSHError) -> Step {
        if toInnerOffset < toInner.count {
            let n = toInner.withUnsafeBytes { send(fd, $0.baseAddress! + toInnerOffset, toInner.count - toInnerOffset, noSignalDontWait) }
            if n > 0 {
                toInnerOffset += n
                if toInnerOffset == toInner.count { toInner.removeAll(keepingCapacity: true); toInnerOffset = 0 }
                return .progressed
            }
            let e = currentErrno()
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) {
                wantEvents |= Int16(POLLOUT)
                return .idle
            }
            // The inner session is gone (EPIPE, ECONNRESET): close the tunnel.
            innerEOF = true
            toInner.removeAll()
            toInnerOffset = 0
            return .progressed
        }
        if channelEOF || innerEOF { return .idle }
        let n = buffer.withUnsafeMutableBytes { raw in
            libssh2_channel_read_ex(channel, 0, raw.baseAddress!.assumingMemoryBound(to: CChar.self), pumpChunk)
        }
        if n > 0 {
            toInner = Array(buffer[0..<n])
            toInnerOffset = 0
            return .progressed
        }
        if n == Int(LIBSSH2_ERROR_EAGAIN) {
            channelWaiting = true
            if libssh2_session_block_directions(session) & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { pending = .read }
            return .waiting
        }
        if n == 0 {
            // The far end closed its side: pass the end of stream on.
            channelEOF = true
            shutdown(fd, Int32(SHUT_WR))
            return .progressed
        }
        throw loop.lastError("read from the tunnel to \(endpoint)", fallback: .channelFailed)
    }

    /// One move from the socketpair to the channel.
    private func toChannelStep(_ loop: SessionLoop, _ session: OpaquePointer) throws(SSHError) -> Step {
        if toChannelOffset < toChannel.count {
            let n = toChannel.withUnsafeBytes { raw in
                libssh2_channel_write_ex(channel, 0, raw.baseAddress!.assumingMemoryBound(to: CChar.self) + toChannelOffset, toChannel.count - toChannelOffset)
            }
            if n > 0 {
                toChannelOffset += n
                if toChannelOffset == toChannel.count { toChannel.removeAll(keepingCapacity: true); toChannelOffset = 0 }
                return .progressed
            }
            if n == Int(LIBSSH2_ERROR_EAGAIN) || n == 0 {
                channelWaiting = true
                if libssh2_session_block_directions(session) & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { pending = .write }
                return .waiting
            }
            throw loop.lastError("write to the tunnel to \(endpoint)", fallback: .channelFailed)
        }
        if innerEOF { return .idle }
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, pumpChunk, Int32(MSG_DONTWAIT)) }
        if n > 0 {
            toChannel = Array(buffer[0..<n])
            toChannelOffset = 0
            return .progressed
        }
        let e = currentErrno()
        if n < 0 && (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) {
            wantEvents |= Int16(POLLIN)
            return .idle
        }
        innerEOF = true
        return .progressed
    }
}

/// `send` flags: never raise SIGPIPE, never block. Linux has MSG_NOSIGNAL; macOS has no such
/// flag (the socketpair's SO_NOSIGPIPE, set where it is made, does the same there).
#if os(Linux)
private let noSignalDontWait = Int32(MSG_NOSIGNAL | MSG_DONTWAIT)
#else
private let noSignalDontWait = Int32(MSG_DONTWAIT)
#endif
