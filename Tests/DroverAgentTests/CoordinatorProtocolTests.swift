import DroverCore
import Foundation
import Testing
@testable import DroverAgent

/// The commands the coordinator drives over one SSH exec channel each: `tail --follow
/// --heartbeat`, `send` and `output`, run against a real agent with real processes.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct CoordinatorProtocolTests {
    @Test func tailFollowHeartbeatPrintsCaughtUpThenBeatsAndNewEvents() throws {
        let h = try AgentHarness(heartbeat: 0.2)
        try h.start()
        let before = try h.submit("before", argv: ["true"])
        _ = try h.result(before)
        try h.waitFor("the attempt's transitions in the log") {
            h.events().filter { $0["job"]?.stringValue == "before" }.count == 4
        }
        let existing = h.events().compactMap { $0["seq"]?.intValue }
        let tail = try StreamingChild([h.binary, "tail", "--from", "2", "--follow", "--heartbeat", "--root", h.root], environment: h.environment)

        // Everything from seq 2 that already exists, then caught_up with the last seq printed.
        var printed: [Int] = []
        var caughtUp: Int?
        while caughtUp == nil {
            let node = try JSONParser.parse(try tail.readLine(timeout: 10))
            if let n = node["caught_up"]?.intValue { caughtUp = n } else {
                printed.append(try #require(node["seq"]?.intValue, "an event line before caught_up: \(node.jsonText)"))
            }
        }
        #expect(printed == Array(2...(existing.last ?? 1)))
        #expect(caughtUp == printed.last)

        // Heartbeats: the file's JSON as it is, a new line each time it changes.
        var beats: [JSONNode] = []
        while beats.count < 3 {
            let node = try JSONParser.parse(try tail.readLine(timeout: 5))
            let beat = try #require(node["heartbeat"], "only heartbeats while nothing happens: \(node.jsonText)")
            beats.append(beat)
        }
        let beatSeqs = beats.compactMap { $0["seq"]?.intValue }
        #expect(beatSeqs.count == 3 && zip(beatSeqs.dropFirst(), beatSeqs).allSatisfy { $0 > $1 }, "heartbeat seqs \(beatSeqs)")
        #expect(beats.allSatisfy { $0["pid"]?.intValue == h.agentPID().map(Int.init) })

        // A job run now: its transitions arrive as new events, seq going on from caught_up.
        _ = try h.submit("after", argv: ["sh", "-c", "sleep 0.3"])
        var newEvents: [JSONNode] = []
        var lastBeat = beatSeqs.last ?? 0
        while !newEvents.contains(where: { $0["job"]?.stringValue == "after" && $0["state"]?.stringValue == "exited" }) {
            let node = try JSONParser.parse(try tail.readLine(timeout: 10))
            if let beat = node["heartbeat"] {
                let seq = try #require(beat["seq"]?.intValue)
                #expect(seq > lastBeat)
                lastBeat = seq
            } else {
                newEvents.append(node)
            }
        }
        let newSeqs = newEvents.compactMap { $0["seq"]?.intValue }
        #expect(newSeqs == Array((caughtUp! + 1)...(caughtUp! + newSeqs.count)))
        #expect(newEvents.compactMap { $0["state"]?.stringValue } == ["accepted", "starting", "running", "exited"])
        #expect(lastBeat > beatSeqs.last ?? 0, "heartbeats kept coming while the job ran")

        // The reader goes away: the next heartbeat line fails to write, and tail exits 0.
        tail.closeOutput()
        #expect(try tail.waitExit(timeout: 3) == 0)
    }

    @Test func tailFollowFromJustPastTheEndReportsSEQMinusOne() throws {
        let h = try AgentHarness()
        try h.start()
        try h.waitFor("agent_started in the log") { !h.events().isEmpty }
        let last = try #require(h.events().last?["seq"]?.intValue)
        let tail = try StreamingChild([h.binary, "tail", "--from", String(last + 1), "--follow", "--root", h.root], environment: h.environment)
        #expect(try tail.readLine(timeout: 10) == "{\"caught_up\":\(last)}")
    }

    /// A reader that applied more than the log holds (the state directory was replaced, e.g. a
    /// tmpfs root after a reboot) learns where the log really ends, so it can start over.
    @Test func tailFollowPastTheEndOfAReplacedLogReportsWhereItEnds() throws {
        let h = try AgentHarness()
        try h.start()
        try h.waitFor("agent_started in the log") { !h.events().isEmpty }
        let last = try #require(h.events().last?["seq"]?.intValue)
        let tail = try StreamingChild([h.binary, "tail", "--from", "1000", "--follow", "--root", h.root], environment: h.environment)
        #expect(try tail.readLine(timeout: 10) == "{\"caught_up\":\(last)}")
        let usage = try h.agent(["tail", "--heartbeat"])
        #expect(usage.status == 2 && usage.stderr.contains("--follow"))
    }

    @Test func sendPlacesCommandsInInputOrderAndTheAgentRunsThem() throws {
        let h = try AgentHarness()
        func start(_ job: String) -> String {
            "{\"type\":\"start\",\"spec\":{\"job\":\"\(job)\",\"attempt\":1,\"argv\":[\"sh\",\"-c\",\"echo \(job)\"]}}"
        }
        let jobs = ["zeta", "alpha", "mid", "beta"]
        let input = "\n" + start(jobs[0]) + "\n\n" + start(jobs[1]) + "\r\n   \n" + start(jobs[2]) + "\n" + start(jobs[3])
        // The agent is not running yet, so the inbox shows exactly what send placed.
        let r = try h.agent(["send"], stdin: input)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "placed 4\n")
        let names = try FileManager.default.contentsOfDirectory(atPath: h.dir.inbox).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted()
        let placedJobs = names.compactMap { readJSON(h.dir.inbox + "/" + $0)?["spec"]?["job"]?.stringValue }
        #expect(placedJobs == jobs, "inbox names \(names)")

        try h.start()
        for job in jobs {
            let id = AttemptID(job: job, attempt: 1)
            #expect(try h.result(id)["exit_code"]?.intValue == 0)
            #expect(String(decoding: h.stdout(id), as: UTF8.self) == job + "\n")
        }
        // Commands of one send are handled in input order.
        let accepted = h.events().filter { $0["state"]?.stringValue == "accepted" }.compactMap { $0["job"]?.stringValue }
        #expect(accepted == jobs)
    }

    @Test func sendReportsMalformedLinesByNumberAndPlacesTheRest() throws {
        let h = try AgentHarness()
        try h.start()
        let good = { (job: String) in "{\"type\":\"start\",\"spec\":{\"job\":\"\(job)\",\"attempt\":1,\"argv\":[\"true\"]}}" }
        let input = [good("ok1"), "{not json", "[\"type\"]", "{\"job\":\"x\"}", good("ok2")].joined(separator: "\n") + "\n"
        let r = try h.agent(["send"], stdin: input)
        #expect(r.status == 1)
        #expect(r.stdout == "placed 2\n")
        for n in 2...4 { #expect(r.stderr.contains("stdin line \(n):"), "\(r.stderr)") }
        #expect(!r.stderr.contains("line 1:") && !r.stderr.contains("line 5:"))
        #expect(r.stderr.contains("malformed JSON"))
        #expect(try h.result(AttemptID(job: "ok1", attempt: 1))["exit_code"]?.intValue == 0)
        #expect(try h.result(AttemptID(job: "ok2", attempt: 1))["exit_code"]?.intValue == 0)
        // Nothing was placed for the bad lines, so the agent rejected nothing.
        #expect(!h.events().contains { $0["type"]?.stringValue == "rejected" })
    }

    @Test func staleCancelEndsCancelledMarkedStaleAndUnknownReasonsAreRejected() throws {
        let h = try AgentHarness()
        try h.start()
        let id = try h.submit("sleeper", argv: ["sleep", "300"])
        try h.waitRunning(id)
        let bogus = try h.agent(["send"], stdin: "{\"type\":\"cancel\",\"job\":\"sleeper\",\"reason\":\"bogus\"}\n")
        #expect(bogus.status == 0)
        try h.waitFor("the bogus cancel to be rejected") {
            h.events().contains { $0["type"]?.stringValue == "rejected" && $0["reason"]?.stringValue?.contains("unknown cancel reason") == true }
        }
        #expect(h.state(id) == .running)
        let r = try h.agent(["send"], stdin: "{\"type\":\"cancel\",\"job\":\"sleeper\",\"attempt\":1,\"reason\":\"stale\"}\n")
        #expect(r.status == 0 && r.stdout == "placed 1\n")
        let result = try h.result(id)
        #expect(result["reason"]?.stringValue == "cancelled" && result["stale"]?.boolValue == true)
        try h.waitFor("the final transition in the log") {
            h.events().contains { $0["job"]?.stringValue == "sleeper" && $0["state"]?.stringValue == "cancelled" && $0["stale"]?.boolValue == true }
        }
        // A plain cancel carries no stale mark.
        let other = try h.submit("plain", argv: ["sleep", "300"])
        try h.waitRunning(other)
        _ = try h.agent(["cancel", "plain"])
        let plain = try h.result(other)
        #expect(plain["reason"]?.stringValue == "cancelled" && plain["stale"] == nil)
        #expect(h.cookiePIDs().isEmpty)
    }

    @Test func outputFollowCopiesBothStreamsAsTheyGrowUntilTheJobEnds() throws {
        let h = try AgentHarness()
        try h.start()
        // Started before the attempt exists: it waits for it.
        let output = try StreamingChild([h.binary, "output", "chatty/1", "--follow", "--root", h.root], environment: h.environment)
        let id = try h.submit("chatty", shell: "i=1; while [ $i -le 10 ]; do echo out$i; echo err$i >&2; i=$((i+1)); sleep 0.1; done")
        // The first line arrives while the job is still running.
        #expect(try output.readLine(timeout: 10) == "out1")
        #expect(h.state(id)?.isFinal != true)
        let rest = try output.readToEnd(timeout: 20)
        #expect(rest.status == 0)
        #expect(h.state(id)?.isFinal == true, "output --follow exited before the attempt ended")
        let outs = (1...10).map { "out\($0)\n" }.joined(), errs = (1...10).map { "err\($0)\n" }.joined()
        #expect("out1\n" + String(decoding: rest.stdout, as: UTF8.self) == outs)
        #expect(String(decoding: rest.stderr, as: UTF8.self) == errs)

        // Without --follow, of an attempt that has ended: the files as they are, one or both.
        let both = try h.agent(["output", "chatty/1"])
        #expect(both.status == 0 && both.stdout == outs && both.stderr == errs)
        let onlyErr = try h.agent(["output", "chatty/1", "--stderr-only"])
        #expect(onlyErr.status == 0 && onlyErr.stdout.isEmpty && onlyErr.stderr == errs)
        let onlyOut = try h.agent(["output", "chatty/1", "--stdout-only"])
        #expect(onlyOut.status == 0 && onlyOut.stdout == outs && onlyOut.stderr.isEmpty)
    }

    @Test func outputOfAMissingAttemptFails() throws {
        let h = try AgentHarness()
        try h.start()
        let r = try h.agent(["output", "nope/1"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("no attempt nope/1 in \(h.root)"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        let bad = try h.agent(["output", "nope"])
        #expect(bad.status == 2)
    }
}

/// A `drover-agent` command running in the background with pipes on its stdout and stderr,
/// read incrementally with deadlines (never a sleep as synchronisation). It is killed and
/// reaped when the object goes away, so a failing test leaves no process behind.
final class StreamingChild {
    let pid: pid_t
    private var outFD: Int32
    private var errFD: Int32
    private var outBuffer: [UInt8] = []
    private var errBuffer: [UInt8] = []
    private var status: Int32?
    /// The write end of the child's stdin, with `withStdin`.
    private var inFD: Int32 = -1

    init(_ argv: [String], environment: [String: String], withStdin: Bool = false) throws {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0], inPipe: [Int32] = [-1, -1]
        if withStdin {
            guard pipe(&inPipe) == 0 else { throw HarnessError("pipe: errno \(errno)") }
            for fd in inPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        guard pipe(&outPipe) == 0 else { throw HarnessError("pipe: errno \(errno)") }
        guard pipe(&errPipe) == 0 else {
            close(outPipe[0]); close(outPipe[1])
            throw HarnessError("pipe: errno \(errno)")
        }
        // Close-on-exec everywhere (pipe2 is not imported): only the dup2'd copies reach the child.
        for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if withStdin {
            posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let args = argv.map { strdup($0) } + [nil]
        let env = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            args.forEach { free($0) }
            env.forEach { free($0) }
        }
        var child: pid_t = 0
        let rc = posix_spawn(&child, argv[0], &actions, &attributes, args, env)
        close(outPipe[1])
        close(errPipe[1])
        if withStdin {
            close(inPipe[0])
            inFD = inPipe[1]
        }
        guard rc == 0 else {
            close(outPipe[0]); close(errPipe[0])
            throw HarnessError("cannot start \(argv[0]): errno \(rc)")
        }
        pid = child
        outFD = outPipe[0]
        errFD = errPipe[0]
        for fd in [outFD, errFD] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            var s: Int32 = 0
            while waitpid(pid, &s, 0) < 0 && errno == EINTR {}
        }
        if outFD >= 0 { close(outFD) }
        if errFD >= 0 { close(errFD) }
        if inFD >= 0 { close(inFD) }
    }

    /// Writes `text` to the child's stdin (started `withStdin`).
    func write(_ text: String) throws {
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(inFD, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw HarnessError("write to the child's stdin: errno \(errno)") }
            done += n
        }
    }

    /// Closes the child's stdin (it reads end-of-file).
    func closeStdin() {
        if inFD >= 0 { close(inFD) }
        inFD = -1
    }

    /// The next line of stdout (without its newline); fails at the deadline or at end of output.
    func readLine(timeout: Double) throws -> String {
        let end = Date().addingTimeInterval(timeout)
        while true {
            if let nl = outBuffer.firstIndex(of: 0x0A) {
                let line = String(decoding: outBuffer[..<nl], as: UTF8.self)
                outBuffer.removeSubrange(...nl)
                return line
            }
            guard outFD >= 0 else {
                throw HarnessError("stdout ended without a complete line (stderr: \(String(decoding: errBuffer, as: UTF8.self)))")
            }
            let left = end.timeIntervalSinceNow
            if left <= 0 { throw HarnessError("no line on stdout within \(timeout) s (have \(outBuffer.count) bytes)") }
            pump(milliseconds: Int32(min(left, 1) * 1000) + 1)
        }
    }

    /// Everything left on stdout and stderr until both close, and the exit status.
    func readToEnd(timeout: Double) throws -> (stdout: [UInt8], stderr: [UInt8], status: Int32) {
        let end = Date().addingTimeInterval(timeout)
        while outFD >= 0 || errFD >= 0 {
            let left = end.timeIntervalSinceNow
            if left <= 0 { throw HarnessError("output did not end within \(timeout) s") }
            pump(milliseconds: Int32(min(left, 1) * 1000) + 1)
        }
        let s = try waitExit(timeout: max(end.timeIntervalSinceNow, 1))
        defer { outBuffer.removeAll(); errBuffer.removeAll() }
        return (outBuffer, errBuffer, s)
    }

    /// Closes our end of its stdout: the reader is gone.
    func closeOutput() {
        if outFD >= 0 { close(outFD) }
        outFD = -1
    }

    /// Waits for the process to exit; its status (128 + N when killed by signal N).
    func waitExit(timeout: Double) throws -> Int32 {
        if let status { return status }
        let end = Date().addingTimeInterval(timeout)
        var s: Int32 = 0
        while true {
            let r = waitpid(pid, &s, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { throw HarnessError("waitpid: errno \(errno)") }
            if Date() > end { throw HarnessError("pid \(pid) did not exit within \(timeout) s") }
            // Keep its stderr drained meanwhile, so it can never block on a full pipe.
            pump(milliseconds: 10)
        }
        let code = (s & 0x7f) == 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f)
        status = code
        return code
    }

    /// Waits up to `milliseconds` for output and reads what is there; closes a pipe at its end.
    private func pump(milliseconds: Int32) {
        var fds: [pollfd] = []
        if outFD >= 0 { fds.append(pollfd(fd: outFD, events: Int16(POLLIN), revents: 0)) }
        if errFD >= 0 { fds.append(pollfd(fd: errFD, events: Int16(POLLIN), revents: 0)) }
        guard !fds.isEmpty else {
            usleep(UInt32(milliseconds) * 1000)
            return
        }
        guard poll(&fds, nfds_t(fds.count), milliseconds) > 0 else { return }
        for p in fds where p.revents != 0 {
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(p.fd, &chunk, chunk.count)
                if n > 0 {
                    if p.fd == outFD { outBuffer += chunk[0..<n] } else { errBuffer += chunk[0..<n] }
                    continue
                }
                if n == 0 {
                    close(p.fd)
                    if p.fd == outFD { outFD = -1 } else { errFD = -1 }
                }
                break  // EAGAIN: drained for now
            }
        }
    }
}
