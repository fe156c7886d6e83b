#if os(Linux)
import DroverCore
import Glibc

/// Reads /proc directly: cheap, exact, and sees environments of this user's processes.
struct LinuxProcessTable: ProcessTable {
    private static let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    /// Fields after the command name in /proc/PID/stat (the name may hold spaces and parens).
    private func statFields(_ pid: pid_t) -> [Substring]? {
        guard let bytes = try? LocalFile.read("/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    func startTime(of pid: pid_t) -> String? {
        // Field 22 (starttime); after "pid (comm)" it is index 19.
        guard let f = statFields(pid), f.count > 19 else { return nil }
        return String(f[19])
    }

    func snapshot() -> [ProcessEntry] {
        allPIDs().compactMap { pid in
            guard let f = statFields(pid), f.count > 21, let ppid = Int32(f[1]), let pgid = Int32(f[2]) else { return nil }
            let rssPages = UInt64(f[21]) ?? 0
            return ProcessEntry(pid: pid, ppid: ppid, pgid: pgid, residentBytes: rssPages * Self.pageSize)
        }
    }

    /// Follows /proc/PID/task/TID/children (one small read per process of the tree).
    func descendants(of pid: pid_t) -> Set<pid_t> {
        guard LocalFile.exists("/proc/\(pid)/task/\(pid)/children") else { return descendantsFromSnapshot(of: pid) }
        var found = Set<pid_t>()
        var frontier = [pid]
        while let p = frontier.popLast() {
            for task in listTasks(p) {
                guard let bytes = try? LocalFile.read("/proc/\(p)/task/\(task)/children") else { continue }
                for word in bytes.split(separator: UInt8(ascii: " ")) {
                    if let child = pid_t(String(decoding: word, as: UTF8.self)), found.insert(child).inserted { frontier.append(child) }
                }
            }
        }
        return found
    }

    private func listTasks(_ pid: pid_t) -> [pid_t] {
        listDirectory("/proc/\(pid)/task").compactMap { pid_t($0) }
    }

    func cookies(withPrefix prefix: String, startedAfter: String?) -> [(pid: pid_t, cookie: String)] {
        let needle = Array(prefix.utf8)
        let after = startedAfter.flatMap { UInt64($0) }
        var out: [(pid_t, String)] = []
        for pid in allPIDs() {
            if let after, let s = startTime(of: pid).flatMap({ UInt64($0) }), s < after { continue }
            guard let env = try? LocalFile.read("/proc/\(pid)/environ") else { continue }
            for entry in env.split(separator: 0) where entry.starts(with: needle) {
                out.append((pid, String(decoding: entry, as: UTF8.self)))
                break
            }
        }
        return out
    }

    private func allPIDs() -> [pid_t] {
        listDirectory("/proc").compactMap { pid_t($0) }
    }
}
#endif
