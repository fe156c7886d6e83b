#if os(Linux)
import Glibc

/// inotify: one watch per path; a folder's watch names the entry that changed.
func makeNativeFileWatchBackend() -> Result<any FileWatchBackend, FileWatchUnavailable> {
    let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
    guard fd >= 0 else {
        let error = SystemError.current("inotify_init1")
        // EMFILE here is the user's inotify instances (fs.inotify.max_user_instances, 128 by
        // default, shared by every process of the user), far more often than descriptors.
        let hint = error.errno == EMFILE ? "; the user's inotify instances may be used up (raise fs.inotify.max_user_instances)" : ""
        return .failure(FileWatchUnavailable(reason: "\(error)\(hint)"))
    }
    return .success(InotifyWatch(fd: fd))
}

final class InotifyWatch: FileWatchBackend {
    private var fd: Int32
    private var pathOf: [Int32: String] = [:]
    private var wdOf: [String: Int32] = [:]
    /// For folders watched with `entries`: the names that count.
    private var entriesOf: [Int32: Set<String>] = [:]
    private var buffer = [UInt8](repeating: 0, count: 16 * 1024)

    init(fd: Int32) { self.fd = fd }

    var mechanism: FileWatch.Mechanism { .inotify }
    var descriptor: Int32? { fd }
    var nextPoll: Double? { nil }

    /// A file: written, closed after writing, attributes, removed or renamed; not reads or
    /// opens, so reading a watched file wakes no one.
    private static let fileMask = UInt32(IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
    /// A folder: entries created, removed or renamed in or out, and the folder itself removed or
    /// renamed; not writes to the files in it (so the heartbeat's folder sleeps through appends).
    private static let folderMask = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)

    func add(_ path: String, entries: Set<String>?) -> Bool {
        if let wd = wdOf[path] {
            entriesOf[wd] = entries
            return true
        }
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        let isFolder = (st.st_mode & S_IFMT) == S_IFDIR
        let wd = inotify_add_watch(fd, path, isFolder ? Self.folderMask : Self.fileMask)
        guard wd >= 0 else { return false }
        // Two paths naming one inode share a watch descriptor; the later name wins.
        if let old = pathOf[wd] { wdOf[old] = nil }
        pathOf[wd] = path
        wdOf[path] = wd
        entriesOf[wd] = isFolder ? entries : nil
        return true
    }

    func remove(_ path: String) {
        guard let wd = wdOf.removeValue(forKey: path) else { return }
        pathOf[wd] = nil
        entriesOf[wd] = nil
        inotify_rm_watch(fd, wd)
    }

    func watches(_ path: String) -> Bool { wdOf[path] != nil }

    func collect(into wake: inout FileWatch.Wake) {
        let header = MemoryLayout<inotify_event>.size
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }  // EAGAIN: drained
            var offset = 0
            while offset + header <= n {
                let (wd, mask, length) = buffer.withUnsafeBytes { raw -> (Int32, UInt32, Int) in
                    let e = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                    return (e.wd, e.mask, Int(e.len))
                }
                let name = length == 0 ? nil : String(decoding: buffer[(offset + header)..<min(n, offset + header + length)].prefix { $0 != 0 }, as: UTF8.self)
                offset += header + length
                if mask & UInt32(IN_Q_OVERFLOW) != 0 { wake.overflowed = true; continue }
                guard let path = pathOf[wd] else { continue }
                if mask & UInt32(IN_IGNORED) != 0 {
                    // The path was removed (or its file system unmounted): the watch is gone.
                    pathOf[wd] = nil
                    wdOf[path] = nil
                    entriesOf[wd] = nil
                } else if let name, let only = entriesOf[wd], !only.contains(name) {
                    continue  // an entry the caller did not ask about
                }
                wake.paths.insert(path)
            }
        }
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}
#endif
