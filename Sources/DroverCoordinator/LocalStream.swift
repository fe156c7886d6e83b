#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DroverCore
import DroverSSH
import Foundation

/// A shell line running on this machine, its output streamed the way an SSH channel's is.
///
/// `/bin/sh -c` is started with posix_spawn in a process group of its own, every signal
/// unblocked and at its default. One thread polls its stdout and stderr (and feeds its
/// stdin); it stops reading while more than `limit` bytes wait unread, so a full pipe holds
/// the command back. Cancelling, or dropping the last copy of `stream`, closes the pipes
/// and kills the process group (SIGTERM, SIGKILL a second later); the thread then reaps
/// the child and ends.
final class LocalStream: Sendable {
    /// The shell's pid (the leader of the command's process group).
    let pid: pid_t
    private let channel: Channel

    /// Starts `command`; `stdin` is written to it and then closed (nil or empty: /dev/null),
    /// or, with `live`, what is written to that input while it runs (closing it closes stdin).
    init(_ command: String, stdin: [UInt8]?, live: StreamInput? = nil, host: String, limit: Int = 1 << 20) throws(SSHError) {
        let input = stdin ?? []
        let child: Child
        do {
            child = try Self.spawning.withLock { _ in try Self.spawn(command, withStdin: !input.isEmpty || live != nil) }
        } catch {
            throw SSHError(.localIO, host: host, operation: "stream `\(command.prefix(40))`", message: "\(error)")
        }
        pid = child.pid
        channel = Channel(limit: limit, wakeFD: child.wake.write)
        let reader = Reader(channel: channel, pid: pid, stdout: child.stdout, stderr: child.stderr, wake: child.wake.read, stdin: child.stdin, input: input, live: live)
        if let live {
            let channel = self.channel
            live.attach(wake: { channel.wakeForInput() })
        }
        let thread = Thread { reader.run() }
        thread.name = "drover-local-stream"
        thread.start()
    }

    /// The shell and this side's ends of its pipes (non-blocking).
    private struct Child {
        var pid: pid_t
        var stdout: Int32, stderr: Int32, stdin: Int32?
        var wake: (read: Int32, write: Int32)
    }

    /// Held from creating the pipes until their ends are close-on-exec and the child's are
    /// closed: without pipe2 (not in Swift's Glibc) a stream started meanwhile could inherit
    /// them, and a long-lived one would keep another's output from ever ending.
    private static let spawning = Locked(())

    private static func spawn(_ command: String, withStdin: Bool) throws(SystemError) -> Child {
        var open: [Int32] = []
        func pipePair() throws(SystemError) -> (read: Int32, write: Int32) {
            var p: [Int32] = [-1, -1]
            guard pipe(&p) == 0 else { throw SystemError.current("pipe") }
            open += p
            p.forEach { _ = fcntl($0, F_SETFD, FD_CLOEXEC) }
            return (p[0], p[1])
        }
        let child: Child
        do throws(SystemError) {
            let out = try pipePair(), err = try pipePair(), wake = try pipePair()
            let input = try withStdin ? pipePair() : nil

            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            if let input {
                posix_spawn_file_actions_adddup2(&actions, input.read, 0)
            } else {
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            }
            posix_spawn_file_actions_adddup2(&actions, out.write, 1)
            posix_spawn_file_actions_adddup2(&actions, err.write, 2)
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var none = sigset_t(), all = sigset_t()
            sigemptyset(&none)
            sigfillset(&all)
            posix_spawnattr_setsigmask(&attributes, &none)
            posix_spawnattr_setsigdefault(&attributes, &all)
            posix_spawnattr_setpgroup(&attributes, 0)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
            let words: [String] = ["/bin/sh", "-c", command]
            let argv = words.map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            var pid: pid_t = 0
            let rc = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, environ)
            guard rc == 0 else { throw SystemError("start", path: "/bin/sh", errno: rc) }
            child = Child(pid: pid, stdout: out.read, stderr: err.read, stdin: input?.write, wake: wake)
        } catch {
            open.forEach { close($0) }
            throw error
        }
        // The child's ends belong to the child now.
        let mine = [child.stdout, child.stderr, child.wake.read, child.wake.write] + (child.stdin.map { [$0] } ?? [])
        for fd in open where !mine.contains(fd) { close(fd) }
        for fd in mine { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        return child
    }

    /// Dropping the stream is a cancel: the command is killed instead of blocking forever.
    deinit { channel.cancel(wait: false) }

    /// The output as a `HostStream`; it keeps this object (and so the command) alive.
    var stream: HostStream {
        HostStream(nextEvent: { try await self.next() }, stop: { self.cancel() })
    }

    /// The next event; nil after the exit, or once cancelled.
    func next() async throws -> ExecEvent? { try await channel.next() }

    /// Closes the pipes and kills the command; returns once it is reaped and the thread is gone.
    func cancel() { channel.cancel(wait: true) }
}

/// The events between the reader thread and the consumer, guarded by one mutex (`Locked`);
/// `readerEnded` is left once the reader has reaped the child and closed its descriptors.
private final class Channel: Sendable {
    private struct State {
        var events: [ExecEvent] = []
        var head = 0
        var buffered = 0
        var waiter: CheckedContinuation<ExecEvent?, any Error>?
        /// The exit was pushed.
        var finished = false
        /// The consumer stopped: the reader closes the pipes and kills the command.
        var cancelled = false
        /// The reader thread reaped the child and returned; `wakeFD` is closed.
        var done = false
    }

    private let state = Locked(State())
    /// Entered at start, left by `readerDone`: `cancel(wait: true)` waits on it.
    private let readerEnded = DispatchGroup()
    private let limit: Int
    private let wakeFD: Int32

    init(limit: Int, wakeFD: Int32) {
        self.limit = limit
        self.wakeFD = wakeFD
        readerEnded.enter()
    }

    /// Whether the consumer stopped: the reader closes the pipes and kills the command.
    var cancelled: Bool { state.withLock { $0.cancelled } }
    /// Whether the reader should stop reading stdout and stderr for now.
    var isFull: Bool { state.withLock { $0.buffered >= limit } }

    /// Reader: adds an event, handing it straight to a waiting consumer when there is one.
    func push(_ event: ExecEvent) {
        let w: CheckedContinuation<ExecEvent?, any Error>? = state.withLock { s in
            if s.cancelled { return nil }
            if case .exit = event { s.finished = true }
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.events.append(event)
            s.buffered += Self.size(event)
            return nil
        }
        w?.resume(returning: event)
    }

    /// Reader: the child is reaped and every fd closed but the wake pipe's, which this closes
    /// (under the mutex: a consumer writing to it with the read end gone would get SIGPIPE).
    func readerDone(closing wakeReadFD: Int32) {
        let w: CheckedContinuation<ExecEvent?, any Error>? = state.withLock { s in
            s.done = true
            close(wakeReadFD)
            close(wakeFD)
            defer { s.waiter = nil }
            return s.waiter
        }
        readerEnded.leave()
        w?.resume(returning: nil)
    }

    /// Consumer: the next event, nil at the end.
    func next() async throws -> ExecEvent? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<ExecEvent?, any Error>) in
                enum Outcome { case event(ExecEvent), end, wait }
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
                        if wasFull && s.buffered < limit { wakeReader(s) }
                        return .event(e)
                    }
                    if s.finished || s.cancelled || s.done { return .end }
                    s.waiter = c
                    return .wait
                }
                switch outcome {
                case .event(let e): c.resume(returning: e)
                case .end: c.resume(returning: nil)
                case .wait: break
                }
            }
        } onCancel: {
            cancel(wait: false)
        }
    }

    /// Consumer: stops the command; with `wait`, until the reader has reaped it and ended (a
    /// consumer still waiting then got the end from `readerDone`).
    func cancel(wait: Bool) {
        let taken: CheckedContinuation<ExecEvent?, any Error>? = state.withLock { s in
            s.cancelled = true
            wakeReader(s)
            if wait { return nil }
            defer { s.waiter = nil }
            return s.waiter
        }
        var w = taken
        if wait {
            readerEnded.wait()
            w = state.withLock { s in
                defer { s.waiter = nil }
                return s.waiter
            }
        }
        w?.resume(throwing: CancellationError())
    }

    /// Any thread: bytes were queued for stdin.
    func wakeForInput() { state.withLock { wakeReader($0) } }

    /// Wakes the reader's poll (called with the lock held, so `wakeFD` is not closed under us).
    private func wakeReader(_ s: State) {
        if !s.done {
            var byte: UInt8 = 1
            _ = write(wakeFD, &byte, 1)
        }
    }

    private static func size(_ e: ExecEvent) -> Int {
        switch e {
        case .stdout(let b), .stderr(let b): return b.count
        case .exit: return 0
        }
    }
}

/// The thread side: polls the pipes, feeds stdin, then reaps the child.
private struct Reader: Sendable {
    let channel: Channel
    let pid: pid_t
    var stdout: Int32
    var stderr: Int32
    let wake: Int32
    var stdin: Int32?
    var input: [UInt8]
    /// Stdin written while the command runs (instead of `input`).
    let live: StreamInput?

    func run() {
        var me = self
        me.pump()
        me.reap()
    }

    /// Until stdout and stderr are both closed, or the consumer cancels.
    private mutating func pump() {
        // A write to a stdin the command has closed must fail with EPIPE, not kill us.
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
        var written = 0
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while stdout >= 0 || stderr >= 0, !channel.cancelled {
            let reading = !channel.isFull
            var fds = [pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            if reading {
                for fd in [stdout, stderr] where fd >= 0 { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            }
            if let live, stdin != nil {
                let (pending, ended) = live.peek(limit: 1)
                if pending.isEmpty && ended { closeStdin() }
                if !pending.isEmpty, let stdin { fds.append(pollfd(fd: stdin, events: Int16(POLLOUT), revents: 0)) }
            } else if let stdin {
                fds.append(pollfd(fd: stdin, events: Int16(POLLOUT), revents: 0))
            }
            if poll(&fds, nfds_t(fds.count), -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[0].revents != 0 { while read(wake, &buffer, buffer.count) > 0 {} }
            for p in fds.dropFirst() where p.revents != 0 {
                if p.fd == stdin, let live {
                    let (bytes, _) = live.peek(limit: 64 * 1024)
                    let n = bytes.withUnsafeBytes { write(p.fd, $0.baseAddress, $0.count) }
                    if n > 0 { live.consume(n) }
                    if n < 0 && errno != EAGAIN && errno != EINTR { closeStdin() }
                    continue
                }
                if p.fd == stdin {
                    let n = input[written...].withUnsafeBytes { write(p.fd, $0.baseAddress, $0.count) }
                    if n > 0 { written += n }
                    if (n < 0 && errno != EAGAIN && errno != EINTR) || written == input.count { closeStdin() }
                    continue
                }
                let n = read(p.fd, &buffer, buffer.count)
                if n > 0 {
                    let bytes = Array(buffer[0..<n])
                    channel.push(p.fd == stdout ? .stdout(bytes) : .stderr(bytes))
                } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                    if p.fd == stdout { stdout = -1 } else { stderr = -1 }
                    close(p.fd)
                }
            }
        }
        for fd in [stdout, stderr] where fd >= 0 { close(fd) }
        stdout = -1
        stderr = -1
        closeStdin()
    }

    private mutating func closeStdin() {
        if let fd = stdin { close(fd) }
        stdin = nil
        input = []
    }

    /// Waits for the child, killing its process group first when the consumer cancelled.
    private func reap() {
        var status: Int32 = 0
        var terminated: ContinuousClock.Instant?
        var delay: Int32 = 1
        var scratch = [UInt8](repeating: 0, count: 64)
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno != EINTR) { break }
            if channel.cancelled {
                if terminated == nil {
                    kill(-pid, SIGTERM)
                    terminated = .now
                } else if let t = terminated, ContinuousClock.now - t > .seconds(1) {
                    kill(-pid, SIGKILL)
                }
            }
            // Sleeps a little (more each time), waking at once on a cancel.
            var p = pollfd(fd: wake, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, delay) > 0 { while read(wake, &scratch, scratch.count) > 0 {} }
            delay = min(delay * 2, 50)
        }
        let signal = status & 0x7f
        channel.push(.exit(signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signalName(signal))))
        channel.readerDone(closing: wake)
    }
}

/// "TERM", "KILL", … as SSH reports signals (the number for others).
func signalName(_ signal: Int32) -> String {
    let names: [Int32: String] = [
        SIGHUP: "HUP", SIGINT: "INT", SIGQUIT: "QUIT", SIGILL: "ILL", SIGTRAP: "TRAP", SIGABRT: "ABRT",
        SIGBUS: "BUS", SIGFPE: "FPE", SIGKILL: "KILL", SIGUSR1: "USR1", SIGSEGV: "SEGV", SIGUSR2: "USR2",
        SIGPIPE: "PIPE", SIGALRM: "ALRM", SIGTERM: "TERM", SIGXCPU: "XCPU", SIGXFSZ: "XFSZ",
    ]
    return names[signal] ?? String(signal)
}
