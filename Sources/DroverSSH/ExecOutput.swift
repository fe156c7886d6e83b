import DroverCore

/// How a remote command ended.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    /// It exited with this status.
    case exited(Int32)
    /// It was killed by this signal (name without `SIG`, e.g. "KILL").
    case signaled(String)

    public var description: String {
        switch self {
        case .exited(let c): return "exit \(c)"
        case .signaled(let s): return "signal \(s)"
        }
    }
}

/// One piece of a remote command's life, in the order it happened.
public enum ExecEvent: Sendable, Equatable {
    case stdout([UInt8])
    case stderr([UInt8])
    /// The last event.
    case exit(ExitStatus)
}

/// The bounded buffer between the connection thread (producer) and an async consumer.
///
/// When more than `limit` bytes wait unread, the connection stops reading that channel,
/// so SSH flow control holds the remote side back: a slow consumer never grows memory.
final class ExecOutputBuffer: Sendable {
    private struct State {
        var events: [ExecEvent] = []
        var head = 0
        var buffered = 0
        var finished = false
        var error: SSHError?
        var waiter: CheckedContinuation<ExecEvent?, any Error>?
        var cancelled = false
    }

    private let state = Locked(State())
    let limit: Int
    /// Called (from any thread) when a full buffer drains, so the connection reads again.
    private let wake: @Sendable () -> Void

    init(limit: Int, wake: @escaping @Sendable () -> Void) {
        self.limit = limit
        self.wake = wake
    }

    var isFull: Bool { state.withLock { $0.buffered >= limit } }
    var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Producer: adds an event, handing it straight to a waiting consumer when there is one.
    func push(_ event: ExecEvent) {
        let waiter: CheckedContinuation<ExecEvent?, any Error>? = state.withLock { s in
            if s.finished { return nil }
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.events.append(event)
            s.buffered += Self.size(event)
            return nil
        }
        waiter?.resume(returning: event)
    }

    /// Producer: no more events; `error` when the command did not finish normally.
    func finish(_ error: SSHError? = nil) {
        let waiter: CheckedContinuation<ExecEvent?, any Error>? = state.withLock { s in
            if s.finished { return nil }
            s.finished = true
            s.error = error
            defer { s.waiter = nil }
            return s.head == s.events.count ? s.waiter : nil
        }
        if let waiter {
            if let error { waiter.resume(throwing: error) } else { waiter.resume(returning: nil) }
        }
    }

    /// Consumer: the next event, nil at the end.
    func next() async throws -> ExecEvent? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<ExecEvent?, any Error>) in
                enum Outcome { case event(ExecEvent, wasFull: Bool), end(SSHError?), wait }
                let outcome: Outcome = state.withLock { s in
                    if s.head < s.events.count {
                        let e = s.events[s.head]
                        let wasFull = s.buffered >= limit
                        s.head += 1
                        s.buffered -= Self.size(e)
                        if s.head == s.events.count {
                            s.events.removeAll(keepingCapacity: true)
                            s.head = 0
                        }
                        return .event(e, wasFull: wasFull && s.buffered < limit)
                    }
                    if s.finished || s.cancelled { return .end(s.cancelled && s.error == nil ? nil : s.error) }
                    s.waiter = c
                    return .wait
                }
                switch outcome {
                case .event(let e, let wasFull):
                    if wasFull { wake() }
                    c.resume(returning: e)
                case .end(let error):
                    if let error { c.resume(throwing: error) } else { c.resume(returning: nil) }
                case .wait:
                    break
                }
            }
        } onCancel: {
            cancel()
        }
    }

    /// Consumer: stop; the connection closes the channel.
    func cancel() {
        let waiter: CheckedContinuation<ExecEvent?, any Error>? = state.withLock { s in
            s.cancelled = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(throwing: CancellationError())
        wake()
    }

    private static func size(_ e: ExecEvent) -> Int {
        switch e {
        case .stdout(let b), .stderr(let b): return b.count
        case .exit: return 0
        }
    }
}

/// The output of a remote command as it arrives: stdout and stderr chunks, then the exit.
///
/// Iterating it drives flow control; dropping it early closes the channel.
public struct ExecStream: AsyncSequence, Sendable {
    public typealias Element = ExecEvent
    let buffer: ExecOutputBuffer

    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: ExecOutputBuffer
        public mutating func next() async throws -> ExecEvent? {
            try await buffer.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: buffer) }

    /// The next event, nil after the exit: what iterating does. The stream keeps no iteration
    /// state of its own (its buffer does), so a `@Sendable` closure may call this.
    public func next() async throws -> ExecEvent? { try await buffer.next() }

    /// Stops reading and closes the channel.
    public func cancel() { buffer.cancel() }
}

/// A finished command's collected output.
public struct ExecResult: Sendable {
    public var stdout: [UInt8]
    public var stderr: [UInt8]
    public var status: ExitStatus

    public init(stdout: [UInt8], stderr: [UInt8], status: ExitStatus) {
        self.stdout = stdout
        self.stderr = stderr
        self.status = status
    }

    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}
