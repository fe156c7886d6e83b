import DroverCore

/// Bytes for a running command's stdin, written while it runs: the coordinator's commands
/// travel down one long-lived channel per host this way.
///
/// Writers append from any thread; the channel's owner (the session thread, or a local
/// stream's thread) takes what is pending, writes what the other side accepts, and sends
/// end-of-file once the input is closed and fully written.
public final class StreamInput: Sendable {
    private struct State {
        var pending: [UInt8] = []
        var closed = false
        var wake: (@Sendable () -> Void)?
    }

    private let state = Locked(State())

    public init() {}

    /// Queues `bytes` for the command's stdin.
    public func write(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        let wake = state.withLock { s -> (@Sendable () -> Void)? in
            guard !s.closed else { return nil }
            s.pending += bytes
            return s.wake
        }
        wake?()
    }

    /// Ends the input: the command reads end-of-file once everything queued is written.
    public func close() {
        let wake = state.withLock { s -> (@Sendable () -> Void)? in
            s.closed = true
            return s.wake
        }
        wake?()
    }

    /// Bytes queued and not yet taken.
    public var pendingCount: Int { state.withLock { $0.pending.count } }

    /// Called by the channel's owner: how to wake it when bytes arrive.
    public func attach(wake: @escaping @Sendable () -> Void) {
        let now = state.withLock { s -> Bool in
            s.wake = wake
            return !s.pending.isEmpty || s.closed
        }
        if now { wake() }
    }

    /// Up to `limit` pending bytes (left queued until `consume`), and whether the input is
    /// closed with nothing more to come after them.
    public func peek(limit: Int) -> (bytes: [UInt8], ended: Bool) {
        state.withLock { s in (Array(s.pending.prefix(limit)), s.closed && s.pending.count <= limit) }
    }

    /// Drops the first `count` bytes (written by the owner).
    public func consume(_ count: Int) {
        state.withLock { $0.pending.removeFirst(min(count, $0.pending.count)) }
    }
}
