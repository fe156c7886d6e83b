import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The append-only event log: one JSON object per line, each with a per-host `seq`.
///
/// Only the agent appends. A torn last line (a crash mid-write) is ignored by readers and
/// cut off when the agent starts, so appends always begin on a line boundary.
final class EventLog {
    let path: String
    let dir: StateDirectory
    /// `events.log` becomes a closed segment once it is at least this large.
    var segmentSize: Int64
    private(set) var nextSeq = 1
    /// The first `seq` in `events.log` (nil while it is empty).
    private var activeFirstSeq: Int?
    /// How many transitions of each attempt are already in the log.
    private(set) var loggedTransitions: [AttemptID: Int] = [:]
    /// The `seq` of each attempt's final transition (what a coordinator's collected mark is compared with).
    private(set) var finalSeq: [AttemptID: Int] = [:]
    /// The newest snapshot of each attempt already in the log.
    private(set) var loggedCheckpoints: [AttemptID: Int] = [:]

    init(dir: StateDirectory, segmentSize: Int64 = RetentionPolicy.defaultSegmentSize) throws(AgentError) {
        self.dir = dir
        self.path = dir.eventLog
        self.segmentSize = segmentSize
        // Only events.log can end in a torn line (segments are closed after whole appends).
        do throws(SystemError) {
            let bytes = try LocalFile.read(path)
            let complete = bytes.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
            if complete < bytes.count, truncate(path, off_t(complete)) != 0 {
                throw SystemError.current("truncate torn line of", path: path)
            }
        } catch {
            if error.errno != ENOENT { throw .system(error) }
        }
        let index = EventLogIndex.scan(dir)
        nextSeq = index.lastSeq + 1
        loggedTransitions = index.logged
        finalSeq = index.finalSeq
        loggedCheckpoints = index.checkpoints
        activeFirstSeq = EventSegments.firstSeq(path: path)
    }

    /// How many of the events of the last `append` that threw are in the log nonetheless
    /// (whole lines a full disk let through); the caller does not write those again.
    private(set) var lastAppendKept = 0

    /// Appends events (each gets the next `seq` and the time) with one write and, when
    /// `durable`, one fsync (the agent's tick instead makes everything durable with one syncfs).
    func append(_ events: [String], durable: Bool = true) throws(SystemError) {
        guard !events.isEmpty else { return }
        var text = ""
        var seq = nextSeq
        for e in events {
            var line = JSONObject()
            line.set("seq", seq)
            line.set("time", wallTime())
            text += line.text.dropLast() + (e == "{}" ? "}" : "," + e.dropFirst()) + "\n"
            seq += 1
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 { throw SystemError.current("open", path: path) }
        defer { close(fd) }
        var st = stat()
        let before = fstat(fd, &st) == 0 ? st.st_size : -1
        let bytes = Array(text.utf8)
        lastAppendKept = 0
        do throws(SystemError) {
            try AtomicFile.writeAll(fd, bytes, path: path)
            if durable && fsync(fd) != 0 { throw SystemError.current("fsync", path: path) }
        } catch {
            // A full disk can take part of the text. `link` may already have sent its whole
            // lines to a coordinator, which applied them: they stay, with their sequence
            // numbers (cutting them would make the log end before what was applied, which a
            // coordinator must take for a new log). Only a torn last line is cut off, or the
            // retry would glue its first line to it; the retry writes the events not kept.
            var now = stat()
            if before >= 0, fstat(fd, &now) == 0 {
                let written = max(0, min(Int(now.st_size - before), bytes.count))
                let keep = written > 0 ? (bytes[..<written].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0) : 0
                if Int(now.st_size - before) != keep { _ = ftruncate(fd, before + off_t(keep)) }
                let kept = bytes[..<keep].reduce(0) { $1 == 0x0A ? $0 + 1 : $0 }
                if kept > 0 {
                    if activeFirstSeq == nil { activeFirstSeq = nextSeq }
                    nextSeq += kept
                    lastAppendKept = kept
                }
            } else if before >= 0 {
                _ = ftruncate(fd, before)
            }
            throw error
        }
        if activeFirstSeq == nil { activeFirstSeq = nextSeq }
        nextSeq = seq
        if before >= 0, Int64(before) + Int64(text.utf8.count) >= segmentSize { rotate() }
    }

    /// `events.log` becomes the closed segment `events.<first seq>.log`; the next append starts
    /// a new `events.log`. A rename: a crash leaves either name, both complete.
    private func rotate() {
        guard let first = activeFirstSeq else { return }
        let target = dir.root + "/" + EventSegments.name(firstSeq: first)
        if rename(path, target) != 0 {
            AgentLog.write("cannot close the event-log segment \(path) as \(target): errno \(currentErrno()); will try again")
            return
        }
        activeFirstSeq = nil
    }

    /// Notes the `seq` of an attempt's final transition.
    func noteFinal(_ id: AttemptID, seq: Int) { finalSeq[id] = seq }

    /// Forgets an attempt whose folder was removed.
    func forgetAttempt(_ id: AttemptID) {
        finalSeq[id] = nil
        loggedTransitions[id] = nil
    }

    func noteCheckpoint(_ id: AttemptID, index: Int) {
        loggedCheckpoints[id] = max(loggedCheckpoints[id] ?? 0, index)
    }

    func noteLogged(_ id: AttemptID, n: Int) {
        loggedTransitions[id] = max(loggedTransitions[id] ?? 0, n)
    }

    /// The `seq` of the last complete line: 0 for a missing or empty log, nil when it cannot be told
    /// (unreadable, or a last line longer than the 64 KiB read from the end).
    static func lastSeq(path: String) -> Int? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return currentErrno() == ENOENT ? 0 : nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        let size = Int(st.st_size)
        let window = min(size, 1 << 16)
        let bytes = readAt(fd, offset: size - window, count: window)
        guard let end = bytes.lastIndex(of: 0x0A) else { return window == size ? 0 : nil }
        guard let start = bytes[..<end].lastIndex(of: 0x0A).map({ $0 + 1 }) ?? (window == size ? 0 : nil) else { return nil }
        return (try? JSONParser.parse(Array(bytes[start..<end])))?["seq"]?.intValue
    }

    /// Up to `count` bytes from `offset` (fewer at the end of the file).
    static func readAt(_ fd: Int32, offset: Int, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, count - got, off_t(offset + got)) }
            if n < 0 && currentErrno() == EINTR { continue }
            if n <= 0 { break }
            got += n
        }
        out.removeLast(count - got)
        return out
    }
}

/// What the whole event log (every kept segment) says: its last `seq`, how many transitions of
/// each attempt it holds, the `seq` of each attempt's final transition, and each attempt's
/// newest snapshot logged.
struct EventLogIndex {
    var lastSeq = 0
    var logged: [AttemptID: Int] = [:]
    var finalSeq: [AttemptID: Int] = [:]
    var checkpoints: [AttemptID: Int] = [:]

    static func scan(_ dir: StateDirectory) -> EventLogIndex {
        var index = EventLogIndex()
        for file in EventSegments.files(dir) {
            guard let bytes = try? LocalFile.read(file) else { continue }
            let complete = bytes.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
            for line in bytes[0..<complete].split(separator: 0x0A) {
                guard let node = try? JSONParser.parse(Array(line)) else { continue }
                guard let seq = node["seq"]?.intValue else { continue }
                index.lastSeq = max(index.lastSeq, seq)
                if node["type"]?.stringValue == "checkpoint", let job = node["job"]?.stringValue,
                   let attempt = node["attempt"]?.intValue, let k = node["index"]?.intValue {
                    let id = AttemptID(job: job, attempt: attempt)
                    index.checkpoints[id] = max(index.checkpoints[id] ?? 0, k)
                    continue
                }
                guard let job = node["job"]?.stringValue, let attempt = node["attempt"]?.intValue, let n = node["n"]?.intValue else { continue }
                let id = AttemptID(job: job, attempt: attempt)
                index.logged[id] = max(index.logged[id] ?? 0, n)
                if node["state"]?.stringValue.flatMap(AttemptState.init(rawValue:))?.isFinal == true { index.finalSeq[id] = seq }
            }
        }
        return index
    }
}

/// One line of an attempt's `transitions` file.
struct Transition {
    var n: Int
    var state: AttemptState
    var fields: JSONObject

    var json: String {
        var o = JSONObject()
        o.set("n", n)
        o.set("state", state.rawValue)
        o.set("time", wallTime())
        return o.text.dropLast() + (fields.text == "{}" ? "}" : "," + fields.text.dropFirst())
    }
}

/// Reading and writing an attempt's `transitions` file (one writer at a time: the agent
/// before the shim starts and after it is gone, the shim in between).
public enum Transitions {
    /// Every complete line, parsed.
    public static func read(_ path: String) -> [JSONNode] {
        guard let bytes = try? LocalFile.read(path) else { return [] }
        let end = bytes.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
        return bytes[0..<end].split(separator: 0x0A).compactMap { try? JSONParser.parse(Array($0)) }
    }

    /// The state after the last transition.
    public static func currentState(_ path: String) -> AttemptState? {
        read(path).last.flatMap { $0["state"]?.stringValue }.flatMap(AttemptState.init(rawValue:))
    }

    /// Appends the next transition, checked against the state machine.
    ///
    /// Final states are always fsynced. Others only with `durable` — after a power loss every
    /// shim is gone anyway and the attempt becomes `lost`, so their loss costs nothing.
    ///
    /// `after` is the last line's number and state when the caller knows them (the shim, the
    /// file's only writer while it runs): then the file is not read again.
    @discardableResult
    static func append(_ state: AttemptState, to path: String, fields: JSONObject = JSONObject(), durable: Bool = false,
                       after known: (n: Int, state: AttemptState)? = nil) throws(AgentError) -> Int {
        let last: (n: Int, state: AttemptState?)
        if let known {
            last = (known.n, known.state)
        } else {
            let existing = read(path)
            last = (existing.count, existing.last.flatMap { $0["state"]?.stringValue }.flatMap(AttemptState.init(rawValue:)))
        }
        if let current = last.state, !current.canMove(to: state) {
            throw .invalid("impossible transition \(current.rawValue) → \(state.rawValue) in \(path); not applied")
        }
        if last.state == nil && state != .accepted {
            throw .invalid("impossible first transition \(state.rawValue) in \(path); not applied")
        }
        let t = Transition(n: last.n + 1, state: state, fields: fields)
        do { try appendLine(t.json, to: path, durable: durable || state.isFinal) } catch { throw .system(error) }
        return t.n
    }
}

/// What the transitions say about an attempt's processes: its shim (from `starting`) and its
/// job, whose pid is also its process group (from `running`).
public struct AttemptProcesses: Sendable {
    public var state: AttemptState?
    public var shimPID: pid_t?
    public var shimStart: String?
    public var jobPID: pid_t?

    public init(transitionsFile: String) {
        let lines = Transitions.read(transitionsFile)
        state = lines.last?["state"]?.stringValue.flatMap(AttemptState.init(rawValue:))
        for line in lines {
            if let p = line["shim_pid"]?.intValue { shimPID = pid_t(p) }
            if let s = line["shim_start"]?.stringValue { shimStart = s }
            if line["state"]?.stringValue == AttemptState.running.rawValue, let p = line["pid"]?.intValue { jobPID = pid_t(p) }
        }
    }
}
