#if os(Linux)
import Glibc

/// inotify: one watch per path; a folder's watch names the entry that changed.
func makeNativeFileWatchBackend() -> (any FileWatchBackend)? {
    let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
    return fd >= 0 ? InotifyWatch(fd: fd) : nil
}

final class InotifyWatch: FileWatchBackend {
    private var fd: Int32
    private var pathOf: [Int32: String] = [:]
    private var wdOf: [String: Int32] = [:]
    private var buffer = [UInt8](repeating: 0, count: 16 * 1024)

    init(fd: Int32) { self.fd = fd }

    var mechanism: FileWatch.Mechanism { .inotify }
    var descriptor: Int32? { fd }
    var pollInterval: Double? { nil }

    /// Entries created, removed, renamed in or out, written and closed, and the path itself
    /// removed or renamed; not reads or opens, so reading a watched file wakes no one.
    private static let mask = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY
        | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

    func add(_ path: String) -> Bool {
        if wdOf[path] != nil { return true }
        let wd = inotify_add_watch(fd, path, Self.mask)
        guard wd >= 0 else { return false }
        // Two paths naming one inode share a watch descriptor; the later name wins.
        if let old = pathOf[wd] { wdOf[old] = nil }
        pathOf[wd] = path
        wdOf[path] = wd
        return true
    }

    func remove(_ path: String) {
        guard let wd = wdOf.removeValue(forKey: path) else { return }
        pathOf[wd] = nil
        inotify_rm_watch(fd, wd)
    }

    func watches(_ path: String) -> Bool { wdOf[path] != nil }

    func collect(into wake: inout FileWatch.Wake, blocking: Bool) {
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }  // EAGAIN: drained
            var offset = 0
            while offset + MemoryLayout<inotify_event>.size <= n {
                let (wd, mask, length) = buffer.withUnsafeBytes { raw -> (Int32, UInt32, Int) in
                    let e = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                    return (e.wd, e.mask, Int(e.len))
                }
                offset += MemoryLayout<inotify_event>.size + length
                if mask & UInt32(IN_Q_OVERFLOW) != 0 { wake.overflowed = true; continue }
                guard let path = pathOf[wd] else { continue }
                wake.paths.insert(path)
                if mask & UInt32(IN_IGNORED) != 0 {
                    // The path was removed (or its file system unmounted): the watch is gone.
                    pathOf[wd] = nil
                    wdOf[path] = nil
                }
            }
        }
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}
#endif
