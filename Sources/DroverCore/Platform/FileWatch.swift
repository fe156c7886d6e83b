#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sleeps until a watched file or folder changes, a watched descriptor is readable, or a
/// deadline passes: the one way Drover's long-running loops wait, so nothing wakes without work.
///
/// - `watch(_:)` a **folder** reports entries created, removed or renamed in it (a file
///   replaced by `rename`, such as the heartbeat, is seen through its folder), not writes to
///   the files in it; a **file** reports writes and appends to it (such as `events.log`).
///   `watch(_:entries:)` reports a folder only for the named entries (inotify and polling;
///   kqueue cannot tell which entry changed and reports the folder for any).
/// - Linux uses inotify and macOS kqueue (`+Linux`/`+Darwin` files); where neither is
///   available, or when `FileWatch(pollingEvery:)` asks for it, a portable fallback compares
///   `stat` snapshots every interval (slowly: it is a fallback, not the design).
/// - `wait` returns on a signal (`interrupted`), so a loop sees a flag its handler set; a
///   self-pipe passed to `watch(descriptor:)` closes the race before the call.
public final class FileWatch {
    /// What ended a `wait`.
    public struct Wake: Sendable, Equatable {
        /// Watched paths that changed (a folder's path when something in it changed).
        public var paths: Set<String> = []
        /// Watched descriptors that are readable (or closed).
        public var descriptors: Set<Int32> = []
        /// The kernel dropped events (queue overflow): rescan everything watched.
        public var overflowed = false
        /// A signal arrived.
        public var interrupted = false
        /// Nothing happened before the timeout.
        public var timedOut: Bool { paths.isEmpty && descriptors.isEmpty && !overflowed && !interrupted }

        public init() {}
    }

    /// How changes are noticed.
    public enum Mechanism: Sendable, Equatable, CustomStringConvertible {
        case inotify, kqueue
        case polling(interval: Double)

        public var description: String {
            switch self {
            case .inotify: "inotify"
            case .kqueue: "kqueue"
            case .polling(let i): "polling every \(i) s"
            }
        }
    }

    public let mechanism: Mechanism
    /// Why the kernel's mechanism could not be had (nil when it is in use or polling was asked for).
    public let fallbackReason: String?
    /// How many times `wait` returned (the agent reports it, so tests can count wake-ups).
    public private(set) var wakeups = 0
    private var backend: any FileWatchBackend
    private var descriptors: [Int32] = []

    /// The platform's mechanism, or the polling fallback when it cannot be set up.
    public init() {
        switch makeNativeFileWatchBackend() {
        case .success(let native):
            backend = native
            mechanism = native.mechanism
            fallbackReason = nil
        case .failure(let unavailable):
            backend = PollingFileWatch(interval: 0.5)
            mechanism = .polling(interval: 0.5)
            fallbackReason = unavailable.reason
        }
    }

    /// The portable fallback, comparing `stat` snapshots every `interval` seconds.
    public init(pollingEvery interval: Double) {
        backend = PollingFileWatch(interval: interval)
        mechanism = .polling(interval: interval)
        fallbackReason = nil
    }

    deinit { backend.close() }

    /// Starts watching a file or folder; false when it does not exist or cannot be watched.
    /// With `entries`, a folder is reported only when one of these names in it changes.
    @discardableResult
    public func watch(_ path: String, entries: Set<String>? = nil) -> Bool { backend.add(path, entries: entries) }

    /// Stops watching `path` (nothing when it was not watched).
    public func unwatch(_ path: String) { backend.remove(path) }

    /// Whether `path` is being watched.
    public func isWatching(_ path: String) -> Bool { backend.watches(path) }

    /// Also wakes when `fd` is readable (a pipe, a socket, stdin).
    public func watch(descriptor fd: Int32) {
        if !descriptors.contains(fd) { descriptors.append(fd) }
    }

    public func unwatch(descriptor fd: Int32) { descriptors.removeAll { $0 == fd } }

    /// Waits until something changes, or `timeout` seconds pass (nil: no limit). Events the
    /// caller did not ask for (entries outside a folder's `entries`) do not end the wait.
    public func wait(timeout: Double?) -> Wake {
        defer { wakeups += 1 }
        let end = timeout.map { Self.now() + $0 }
        var wake = Wake()
        var first = true
        while true {
            // Changes already queued (or a polling scan that is due) come first.
            backend.collect(into: &wake)
            if !wake.timedOut { return wake }
            let remaining = end.map { $0 - Self.now() }
            if !first, let remaining, remaining <= 0 { return wake }
            first = false
            var limit = remaining.map { max(0, $0) }
            if let next = backend.nextPoll { limit = min(limit ?? next, next) }
            var fds = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if let fd = backend.descriptor { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let ms: Int32 = limit.map { Int32(clamping: Int(($0 * 1000).rounded(.up))) } ?? -1
            let n = poll(&fds, nfds_t(fds.count), ms)
            if n < 0 {
                if currentErrno() == EINTR { wake.interrupted = true }
                return wake
            }
            for p in fds where p.revents != 0 && p.fd != backend.descriptor {
                wake.descriptors.insert(p.fd)
            }
        }
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// Why the kernel's watch could not be set up (the call and its error).
struct FileWatchUnavailable: Error {
    let reason: String
}

/// One way of noticing changes (inotify, kqueue, `stat` snapshots).
protocol FileWatchBackend: AnyObject {
    var mechanism: FileWatch.Mechanism { get }
    /// A descriptor that is readable when changes are queued (nil: none; see `nextPoll`).
    var descriptor: Int32? { get }
    /// Seconds until `collect` should be called again whatever happens (nil: only when
    /// `descriptor` is readable).
    var nextPoll: Double? { get }
    /// `entries`: for a folder, report only changes of these names (nil: any).
    func add(_ path: String, entries: Set<String>?) -> Bool
    func remove(_ path: String)
    func watches(_ path: String) -> Bool
    /// Adds the changes noticed since the last call to `wake`, without blocking.
    func collect(into wake: inout FileWatch.Wake)
    func close()
}

/// The portable fallback: a snapshot (identity, size, times) of each watched path and, for a
/// folder, of its entries (or only the named ones), compared every `interval` seconds. A path
/// that disappears is reported once and no longer watched, as with inotify and kqueue.
final class PollingFileWatch: FileWatchBackend {
    struct Snapshot: Equatable {
        var node: [Int64]
        var entries: [String: [Int64]]?
    }

    let interval: Double
    private var watched: [String: (snapshot: Snapshot, entries: Set<String>?)] = [:]
    private var lastScan = -Double.infinity

    init(interval: Double) { self.interval = interval }

    var mechanism: FileWatch.Mechanism { .polling(interval: interval) }
    var descriptor: Int32? { nil }
    var nextPoll: Double? { max(0, lastScan + interval - FileWatch.now()) }

    func add(_ path: String, entries: Set<String>?) -> Bool {
        // Watched already: keep the snapshot, so a change not yet reported is not lost.
        if let w = watched[path], w.entries == entries { return true }
        guard let s = Self.snapshot(path, entries: entries) else { return false }
        watched[path] = (s, entries)
        return true
    }

    func remove(_ path: String) { watched[path] = nil }
    func watches(_ path: String) -> Bool { watched[path] != nil }
    func close() { watched.removeAll() }

    func collect(into wake: inout FileWatch.Wake) {
        let now = FileWatch.now()
        // poll(2) rounds its timeout up to whole milliseconds, so a due scan is never early by more.
        guard now - lastScan >= interval - 0.001 else { return }
        lastScan = now
        for (path, old) in watched {
            let new = Self.snapshot(path, entries: old.entries)
            guard new != old.snapshot else { continue }
            watched[path] = new.map { ($0, old.entries) }
            wake.paths.insert(path)
        }
    }

    static func snapshot(_ path: String, entries only: Set<String>?) -> Snapshot? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        let isFolder = (st.st_mode & S_IFMT) == S_IFDIR
        // A folder's own times change with every entry; with `only`, the named entries decide.
        var s = Snapshot(node: isFolder && only != nil ? [Int64(st.st_dev), Int64(st.st_ino)] : fingerprint(st), entries: nil)
        if isFolder, let d = opendir(path) {
            defer { closedir(d) }
            var entries: [String: [Int64]] = [:]
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name == "." || name == ".." || !(only?.contains(name) ?? true) { continue }
                var es = stat()
                // Entries created, removed or replaced (a new inode), not files written in place.
                entries[name] = lstat(path + "/" + name, &es) == 0 ? [Int64(es.st_dev), Int64(es.st_ino)] : []
            }
            s.entries = entries
        }
        return s
    }

    private static func fingerprint(_ st: stat) -> [Int64] {
        [Int64(st.st_dev), Int64(st.st_ino), Int64(st.st_size), Int64(FileStatus.modificationTime(st) * 1e9), Int64(st.st_nlink)]
    }
}
