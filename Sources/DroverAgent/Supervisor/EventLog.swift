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
    private(set) var nextSeq = 1
    /// How many transitions of each attempt are already in the log.
    private(set) var loggedTransitions: [AttemptID: Int] = [:]
    /// The newest snapshot of each attempt already in the log.
    private(set) var loggedCheckpoints: [AttemptID: Int] = [:]

    init(path: String) throws(AgentError) {
        self.path = path
        let bytes: [UInt8]
        do { bytes = try LocalFile.read(path) } catch {
            if error.errno == ENOENT { return }
            throw .system(error)
        }
        let complete = bytes.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
        if complete < bytes.count {
            if truncate(path, off_t(complete)) != 0 { throw .system(.current("truncate torn line of", path: path)) }
        }
        for line in bytes[0..<complete].split(separator: 0x0A) {
            guard let node = try? JSONParser.parse(Array(line)) else { continue }
            if let seq = node["seq"]?.intValue { nextSeq = max(nextSeq, seq + 1) }
            if let job = node["job"]?.stringValue, let attempt = node["attempt"]?.intValue, let n = node["n"]?.intValue {
                let id = AttemptID(job: job, attempt: attempt)
                loggedTransitions[id] = max(loggedTransitions[id] ?? 0, n)
            } else if node["type"]?.stringValue == "checkpoint", let job = node["job"]?.stringValue,
                      let attempt = node["attempt"]?.intValue, let k = node["index"]?.intValue {
                noteCheckpoint(AttemptID(job: job, attempt: attempt), index: k)
            }
        }
    }

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
        do throws(SystemError) {
            try AtomicFile.writeAll(fd, Array(text.utf8), path: path)
            if durable && fsync(fd) != 0 { throw SystemError.current("fsync", path: path) }
        } catch {
            // A full disk can take part of the text: cut it off, or the retry would glue its
            // first line to a torn one. The retry reuses the same sequence numbers.
            if before >= 0 { _ = ftruncate(fd, before) }
            throw error
        }
        nextSeq = seq
    }

    func noteCheckpoint(_ id: AttemptID, index: Int) {
        loggedCheckpoints[id] = max(loggedCheckpoints[id] ?? 0, index)
    }

    func noteLogged(_ id: AttemptID, n: Int) {
        loggedTransitions[id] = max(loggedTransitions[id] ?? 0, n)
    }

    /// Complete lines with `seq >= from`, starting the scan at byte `offset`; returns the
    /// lines and the offset after the last complete line. Reads only what lies after
    /// `offset`, and at most about `limit` bytes of it (more only when one line is longer).
    static func read(path: String, from seq: Int, offset: Int = 0, limit: Int = .max) -> (lines: [String], offset: Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return ([], offset) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, Int(st.st_size) > offset else { return ([], offset) }
        let available = Int(st.st_size) - offset
        var want = min(available, max(limit, 4096))
        var bytes: [UInt8]
        while true {
            bytes = readAt(fd, offset: offset, count: want)
            if bytes.count < want || bytes.contains(0x0A) || want == available { break }
            want = min(available, want * 2)
        }
        guard let last = bytes.lastIndex(of: 0x0A) else { return ([], offset) }
        var out: [String] = []
        for line in bytes[0..<last].split(separator: 0x0A) {
            let text = String(decoding: line, as: UTF8.self)
            if seq <= 1 { out.append(text); continue }
            if let node = try? JSONParser.parse(text), let s = node["seq"]?.intValue, s >= seq { out.append(text) }
        }
        return (out, offset + last + 1)
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
    private static func readAt(_ fd: Int32, offset: Int, count: Int) -> [UInt8] {
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
