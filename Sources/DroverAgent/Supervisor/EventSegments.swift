import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The event log's files: `events.log`, the one the agent appends to, and the closed segments
/// it became each time it passed the retention policy's segment size,
/// `events.<first seq, 12 digits>.log` (so names sort in `seq` order). `seq` runs on across them.
enum EventSegments {
    struct Segment: Equatable {
        var firstSeq: Int
        var path: String
    }

    static func name(firstSeq: Int) -> String {
        let digits = String(firstSeq)
        return "events." + String(repeating: "0", count: max(0, 12 - digits.count)) + digits + ".log"
    }

    /// The closed segments, oldest first.
    static func closed(_ dir: StateDirectory) -> [Segment] {
        listDirectory(dir.root).compactMap { name -> Segment? in
            guard name.hasPrefix("events."), name.hasSuffix(".log"), name != "events.log" else { return nil }
            guard let first = Int(name.dropFirst(7).dropLast(4)), first >= 1 else { return nil }
            return Segment(firstSeq: first, path: dir.root + "/" + name)
        }.sorted { $0.firstSeq < $1.firstSeq }
    }

    /// Every file of the log in `seq` order: the closed segments, then `events.log`.
    static func files(_ dir: StateDirectory) -> [String] {
        closed(dir).map(\.path) + [dir.eventLog]
    }

    /// The `seq` of the log's last complete line (in `events.log`, or when it is empty the newest
    /// segment's): 0 for no log at all, nil when it cannot be told.
    static func lastSeq(_ dir: StateDirectory) -> Int? {
        let active = EventLog.lastSeq(path: dir.eventLog)
        if let a = active, a > 0 { return a }
        guard let newest = closed(dir).last else { return active }
        return EventLog.lastSeq(path: newest.path)
    }

    /// The `seq` of a line, read from its start (`{"seq":N,…`) without parsing the rest.
    static func seq(of line: ArraySlice<UInt8>) -> Int? {
        let prefix = Array("{\"seq\":".utf8)
        if line.starts(with: prefix) {
            var n = 0
            var any = false
            for b in line.dropFirst(prefix.count) {
                guard b >= 0x30 && b <= 0x39 else { break }
                n = n * 10 + Int(b - 0x30)
                any = true
            }
            if any { return n }
        }
        return (try? JSONParser.parse(Array(line)))?["seq"]?.intValue
    }

    /// The `seq` of a file's first line (read from its first 64 KiB).
    static func firstSeq(path: String) -> Int? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return firstSeq(fd: fd)
    }

    static func firstSeq(fd: Int32) -> Int? {
        let bytes = EventLog.readAt(fd, offset: 0, count: 1 << 16)
        guard let end = bytes.firstIndex(of: 0x0A) else { return nil }
        return seq(of: bytes[..<end])
    }
}

/// Reads the event log from a sequence number across its segments, and follows it as the agent
/// appends and rotates: what `tail` and `link` send up. It holds the file it reads open, so a
/// rotation (a rename) never makes it lose its place: it drains that file, then goes on with
/// the next segment or the new `events.log`.
struct EventCursor {
    let dir: StateDirectory
    private var fd: Int32 = -1
    /// The open file was opened as `events.log` (not as a closed segment).
    private var active = false
    private var identity: (dev: UInt64, ino: UInt64) = (0, 0)
    private var offset = 0
    /// The first `seq` of the open file (from its name, or its first line).
    private var fileFirstSeq = 0
    /// The last `seq` read (forwarded or skipped).
    private(set) var lastRead = 0
    /// Every file read to its end holds only sequence numbers up to this one.
    private var floorSeq = 0
    /// Grows each time the cursor moves to another file (the reader watches `events.log` anew).
    private(set) var generation = 0

    /// Placed at the file that holds `seq` (the oldest kept one when `seq` is older).
    init(dir: StateDirectory, from seq: Int) {
        self.dir = dir
        // events.log first (then its first line from the open file, so a rotation in between
        // cannot make the cursor skip a segment), else the newest segment that starts at or before SEQ.
        if openFile(dir.eventLog, active: true, firstSeq: 0), let first = EventSegments.firstSeq(fd: fd), first <= seq {
            fileFirstSeq = first
            return
        }
        let closed = EventSegments.closed(dir)
        if let start = closed.last(where: { $0.firstSeq <= seq }) ?? closed.first, openFile(start.path, active: false, firstSeq: start.firstSeq) {
            return
        }
        openFile(dir.eventLog, active: true, firstSeq: 0)
    }

    /// Closes the open file.
    mutating func close() {
        if fd >= 0 { _ = closeDescriptor(fd) }
        fd = -1
    }

    /// The next complete lines (about `limit` bytes at most), with their `seq`; empty when
    /// nothing new has been appended.
    mutating func next(limit: Int) -> [(seq: Int, line: String)] {
        while true {
            // No events.log yet (a new root), or it had just been closed as a segment.
            if fd < 0 && !openNext() { return [] }
            let rotated = active && rotatedAway()
            let lines = readChunk(limit: limit)
            if !lines.isEmpty { return lines }
            if active && !rotated { return [] }
            // Read to its end, and it will not grow: on to the next segment or events.log.
            floorSeq = max(floorSeq, lastRead, fileFirstSeq)
            close()
            generation += 1
        }
    }

    /// Whether `events.log` is no longer the file this cursor holds (the agent renamed it).
    private func rotatedAway() -> Bool {
        var st = stat()
        guard stat(dir.eventLog, &st) == 0 else { return currentErrno() == ENOENT && offset > 0 }
        return UInt64(st.st_dev) != identity.dev || UInt64(st.st_ino) != identity.ino
    }

    /// Opens the first closed segment after `floorSeq`, else `events.log` — checked again after
    /// opening it: a segment closed meanwhile comes first.
    private mutating func openNext() -> Bool {
        for _ in 0..<3 {
            if let next = EventSegments.closed(dir).first(where: { $0.firstSeq > floorSeq }) {
                if openFile(next.path, active: false, firstSeq: next.firstSeq) { return true }
                continue  // removed meanwhile
            }
            guard openFile(dir.eventLog, active: true, firstSeq: 0) else { return false }
            if !EventSegments.closed(dir).contains(where: { $0.firstSeq > floorSeq }) { return true }
            close()
        }
        return false
    }

    @discardableResult
    private mutating func openFile(_ path: String, active: Bool, firstSeq: Int) -> Bool {
        close()
        self.active = active
        offset = 0
        fileFirstSeq = firstSeq
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        var st = stat()
        if fstat(fd, &st) == 0 { identity = (UInt64(st.st_dev), UInt64(st.st_ino)) }
        return true
    }

    private mutating func readChunk(limit: Int) -> [(seq: Int, line: String)] {
        var st = stat()
        guard fstat(fd, &st) == 0, Int(st.st_size) > offset else { return [] }
        let available = Int(st.st_size) - offset
        var want = min(available, max(limit, 4096))
        var bytes: [UInt8]
        while true {
            bytes = EventLog.readAt(fd, offset: offset, count: want)
            if bytes.count < want || bytes.contains(0x0A) || want == available { break }
            want = min(available, want * 2)
        }
        guard let last = bytes.lastIndex(of: 0x0A) else { return [] }
        offset += last + 1
        var out: [(Int, String)] = []
        for line in bytes[0..<last].split(separator: 0x0A) {
            guard let s = EventSegments.seq(of: line) else { continue }
            if fileFirstSeq == 0 { fileFirstSeq = s }
            lastRead = max(lastRead, s)
            out.append((s, String(decoding: line, as: UTF8.self)))
        }
        return out
    }
}

/// `close(2)`, callable where a method named `close` hides it.
private func closeDescriptor(_ fd: Int32) -> Int32 { close(fd) }
