import CDroverSys
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `drover-agent link [--from SEQ] [--protocol N]`: the coordinator's one long-lived, two-way channel to a host.
///
/// Up (stdout), one JSON line each: a `{"hello":…}` naming the protocol version, the event log
/// from SEQ (as `tail --follow` prints it, with `{"caught_up":N}` after the backlog), a
/// `{"heartbeat":…}` whenever the heartbeat file changes, and, on the end transition of an
/// attempt whose stdout and stderr are both small (`WireProtocol.inlineOutputLimit`), those
/// outputs inline, so the coordinator needs no second round trip to collect them.
///
/// Down (stdin): `AgentCommand` lines. Starts, cancels and signals go to the inbox as `send`
/// places them, without `send`'s `syncfs` (nothing waits for a disk flush in the loop that
/// forwards heartbeats); a lease is written to `leases/<coordinator>`. The link ends when
/// stdin closes or stdout is gone.
///
/// It sleeps in `FileWatch.wait` with no timeout: only a command, an appended event or a new
/// heartbeat wakes it.
enum LinkCommand {
    static func run(_ options: inout Options) throws(AgentError) -> Int32 {
        try options.allow([])
        let dir = options.root
        guard let from = Int(options.values["--from"] ?? "1"), from >= 1 else { throw .usage("--from must be a sequence number, 1 or more") }
        // The coordinator says which protocol it speaks; another version is refused before
        // anything is read or written (the coordinator then deploys its own agent).
        if let wanted = options.values["--protocol"], wanted != String(WireProtocol.version) {
            throw .usage("this agent (\(AgentInfo.version), build \(AgentInfo.buildHash)) speaks protocol \(WireProtocol.version), the coordinator \(wanted); deploy the coordinator's agent (drover deploy)")
        }
        let policy = try retention(options)
        try dir.prepare()
        try Ownership.checkNotForeign(dir)
        if let policy { try write(policy, in: dir) }
        StreamIO.ignoreBrokenPipes()
        _ = fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK)

        var events = EventForwarder(dir: dir, from: from, heartbeats: true, inlineOutput: true)
        var commands = CommandReader(dir: dir)
        if !StreamIO.writeAll(1, Array((AgentMessage.helloLine(version: AgentInfo.version, build: AgentInfo.buildHash) + "\n").utf8)) { return 0 }
        guard events.backlog(), events.caughtUp() else { return 0 }

        let watch = FileWatch.forAgent()
        watch.watch(descriptor: 0)
        var facts: [FactsChild] = []
        while true {
            events.watchFiles(watch)
            guard events.forwardNew() else { return 0 }
            let wake = watch.wait(timeout: nil)
            for i in facts.indices.reversed() where wake.descriptors.contains(facts[i].fd) {
                guard let line = facts[i].read() else { continue }
                watch.unwatch(descriptor: facts[i].fd)
                facts[i].finish()
                facts.remove(at: i)
                if !line.isEmpty, !StreamIO.writeAll(1, Array((line + "\n").utf8)) { return 0 }
            }
            if wake.descriptors.contains(0) {
                let input = commands.read()
                for request in commands.factRequests {
                    do throws(AgentError) {
                        let child = try FactsChild(request)
                        watch.watch(descriptor: child.fd)
                        facts.append(child)
                    } catch {
                        AgentCLI.printError("facts: \(error)")
                    }
                }
                commands.factRequests.removeAll()
                switch input {
                case .open: break
                case .closed: return 0
                case .failed(let e): throw e
                }
            }
        }
    }
}

extension LinkCommand {
    /// The retention the coordinator passed (`--keep`, `--max-size`, `--segment-size`); nil when none.
    static func retention(_ options: Options) throws(AgentError) -> RetentionPolicy? {
        let keep = options.values["--keep"], max = options.values["--max-size"], segment = options.values["--segment-size"]
        guard keep != nil || max != nil || segment != nil else { return nil }
        var p = RetentionPolicy()
        if let keep {
            guard let k = RetentionPolicy.duration(keep) else { throw .usage("--keep must be a duration such as 7d, 12h or 3600, not \"\(keep)\"") }
            p.keep = k
        }
        if let max, max != "default" {
            guard let m = RetentionPolicy.size(max) else { throw .usage("--max-size must be a size such as 2GiB or 500M (or \"default\"), not \"\(max)\"") }
            p.maxSize = m
        }
        if let segment {
            guard let s = RetentionPolicy.size(segment) else { throw .usage("--segment-size must be a size such as 16MiB, not \"\(segment)\"") }
            p.segmentSize = s
        }
        return p
    }

    /// Writes `retention.json` when it says something else (the agent re-reads it when it changes).
    static func write(_ policy: RetentionPolicy, in dir: StateDirectory) throws(AgentError) {
        if let current = readJSON(dir.retentionFile), RetentionPolicy.parse(current) == policy { return }
        do { try AtomicFile.write(Array((policy.json + "\n").utf8), to: dir.retentionFile) } catch { throw .system(error) }
    }
}

/// The commands coming down a link's stdin: its partial last line, and how many lines came.
struct CommandReader {
    let dir: StateDirectory
    var partial: [UInt8] = []
    var received = 0
    /// Facts requests read, for the link to run (`FactsChild`).
    var factRequests: [FactsRequest] = []

    init(dir: StateDirectory) { self.dir = dir }

    enum Input { case open, closed, failed(AgentError) }

    /// Reads what stdin holds and acts on each whole line.
    mutating func read() -> Input {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var ended = false
        while true {
            let n = buffer.withUnsafeMutableBytes { posixRead(0, $0.baseAddress, $0.count) }
            if n > 0 {
                partial += buffer[0..<n]
                continue
            }
            if n == 0 { ended = true }
            else if currentErrno() == EINTR { continue }
            else if currentErrno() != EAGAIN && currentErrno() != EWOULDBLOCK { return .failed(.system(.current("read", path: "stdin"))) }
            break
        }
        guard let last = partial.lastIndex(of: 0x0A) else { return ended ? .closed : .open }
        let lines = partial[...last].split(separator: 0x0A)
        partial.removeSubrange(...last)
        let stamp = InboxCommand.uniqueStamp()
        for raw in lines {
            received += 1
            let text = String(decoding: raw, as: UTF8.self)
            let command: AgentCommand
            do {
                let node = try JSONParser.parse(Array(raw))
                switch AgentCommand.parse(node, file: "link line \(received)") {
                case .success(let c): command = c
                case .failure(let e):
                    AgentCLI.printError("link line \(received): \(e); not placed")
                    continue
                }
            } catch {
                AgentCLI.printError("link line \(received): malformed JSON at column \(error.position.column): \(error.message); not placed")
                continue
            }
            do throws(AgentError) {
                if case .lease(let lease) = command {
                    try StateDirectory.makeDirectory(dir.leases)
                    do { try AtomicFile.write(Array((lease.json + "\n").utf8), to: dir.leaseFile(coordinator: lease.coordinator), durable: false) } catch { throw .system(error) }
                } else if case .facts(let request) = command {
                    factRequests.append(request)
                } else {
                    // Not synced: a command a power loss takes before the agent accepted it is
                    // sent again by the coordinator's reconciliation, and the agent makes what it
                    // accepts durable itself. A `syncfs` here held up the heartbeats and events
                    // this same loop forwards for as long as the disk took to flush (8 s on a
                    // busy disk: the host was declared down while it ran jobs).
                    try InboxCommand.place(text, in: dir, stamp: stamp, order: received, durable: false)
                }
            } catch {
                // The coordinator sees the link end and, reconnected, resends what is still needed.
                return .failed(.invalid("link line \(received): \(error.description); the link stops here"))
            }
        }
        return ended ? .closed : .open
    }
}

/// A `drover-agent facts` child of the link: its output (one line) is forwarded up the link
/// once it ends, so slow fact commands never hold up events and heartbeats.
struct FactsChild {
    let pid: pid_t
    let fd: Int32
    var output: [UInt8] = []

    init(_ request: FactsRequest) throws(AgentError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw .system(.current("pipe", path: nil)) }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devnull) }
        var err: Int32 = 0
        let argv = [currentExecutable(), "facts", "--request", request.jsonObject.text]
        let pid = argv.withCStrings { a in environmentCStrings { e in drover_spawn_job_wrapper(argv[0], a, e, nil, devnull, fds[1], devnull, 0, &err) } }
        close(fds[1])
        guard pid > 0 else {
            close(fds[0])
            throw .system(SystemError("start \(argv[0]) facts", path: nil, errno: err))
        }
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        self.pid = pid
        fd = fds[0]
    }

    /// Reads what is there; the whole output (its last line) once the child closed it, else nil.
    mutating func read() -> String? {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
            if n > 0 { output += buffer[0..<n]; continue }
            if n < 0 && currentErrno() == EINTR { continue }
            if n < 0 && (currentErrno() == EAGAIN || currentErrno() == EWOULDBLOCK) { return nil }
            break
        }
        return String(decoding: output, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
    }

    /// Closes the pipe and reaps the child.
    func finish() {
        close(fd)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && currentErrno() == EINTR {}
    }
}
