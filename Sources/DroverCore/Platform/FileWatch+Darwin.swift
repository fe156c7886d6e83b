#if canImport(Darwin)
import Darwin

/// kqueue: an `EVFILT_VNODE` filter per path, on a descriptor opened with `O_EVTONLY`
/// (which does not keep a volume from unmounting). A folder reports `NOTE_WRITE` when an
/// entry is created, removed or renamed; a file when it is written or extended.
func makeNativeFileWatchBackend() -> Result<any FileWatchBackend, FileWatchUnavailable> {
    let kq = kqueue()
    guard kq >= 0 else { return .failure(FileWatchUnavailable(reason: SystemError.current("kqueue").description)) }
    return .success(KqueueWatch(kq: kq))
}

final class KqueueWatch: FileWatchBackend {
    private var kq: Int32
    private var pathOf: [Int32: String] = [:]
    private var fdOf: [String: Int32] = [:]

    init(kq: Int32) { self.kq = kq }

    var mechanism: FileWatch.Mechanism { .kqueue }
    var descriptor: Int32? { kq }
    var nextPoll: Double? { nil }

    /// kqueue does not say which entry of a folder changed, so `entries` is not used: the
    /// folder is reported for any of them.
    func add(_ path: String, entries: Set<String>?) -> Bool {
        if fdOf[path] != nil { return true }
        let fd = open(path, O_EVTONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        let flags = UInt32(NOTE_WRITE | NOTE_EXTEND | NOTE_DELETE | NOTE_RENAME | NOTE_ATTRIB | NOTE_REVOKE)
        var change = kevent(ident: UInt(fd), filter: Int16(EVFILT_VNODE), flags: UInt16(EV_ADD | EV_CLEAR),
                            fflags: flags, data: 0, udata: nil)
        guard kevent(kq, &change, 1, nil, 0, nil) == 0 else {
            Darwin.close(fd)
            return false
        }
        pathOf[fd] = path
        fdOf[path] = fd
        return true
    }

    func remove(_ path: String) {
        guard let fd = fdOf.removeValue(forKey: path) else { return }
        pathOf[fd] = nil
        Darwin.close(fd)  // closing the descriptor removes its filter
    }

    func watches(_ path: String) -> Bool { fdOf[path] != nil }

    func collect(into wake: inout FileWatch.Wake) {
        var events = [kevent](repeating: kevent(), count: 64)
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        while true {
            let n = kevent(kq, nil, 0, &events, Int32(events.count), &zero)
            if n <= 0 { return }
            for e in events.prefix(Int(n)) {
                let fd = Int32(e.ident)
                guard let path = pathOf[fd] else { continue }
                wake.paths.insert(path)
                if e.fflags & UInt32(NOTE_DELETE | NOTE_RENAME | NOTE_REVOKE) != 0 {
                    // The watched node is gone from this path: watch it again if it comes back.
                    remove(path)
                }
            }
            if Int(n) < events.count { return }
        }
    }

    func close() {
        for fd in fdOf.values { Darwin.close(fd) }
        fdOf.removeAll()
        pathOf.removeAll()
        if kq >= 0 { Darwin.close(kq) }
        kq = -1
    }
}
#endif
