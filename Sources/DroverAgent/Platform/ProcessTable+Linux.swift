#if os(Linux)
import DroverCore
import Glibc

/// Reads /proc directly: cheap, exact, and sees environments of this user's processes.
struct LinuxProcessTable: ProcessTable {
    private static let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    /// Fields after the command name in /proc/PID/stat (the name may hold spaces and parens),
    /// as byte ranges: this runs for every process of a scan, so it makes no strings.
    private func statFields(_ pid: pid_t) -> (bytes: [UInt8], fields: [Range<Int>])? {
        guard let bytes = try? LocalFile.read("/proc/\(pid)/stat"), let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        var fields: [Range<Int>] = []
        fields.reserveCapacity(24)
        var start = close + 1
        for i in (close + 1)...bytes.count where i == bytes.count || bytes[i] == UInt8(ascii: " ") || bytes[i] == 0x0A {
            if i > start { fields.append(start..<i) }
            start = i + 1
            if fields.count == 24 { break }
        }
        return (bytes, fields)
    }

    /// The decimal number in `range` of `bytes`.
    private func number(_ bytes: [UInt8], _ range: Range<Int>) -> UInt64? {
        var n: UInt64 = 0
        for b in bytes[range] {
            guard b >= 0x30, b <= 0x39 else { return nil }
            n = n &* 10 &+ UInt64(b - 0x30)
        }
        return range.isEmpty ? nil : n
    }

    func startTime(of pid: pid_t) -> String? {
        // Field 22 (starttime); after "pid (comm)" it is index 19.
        guard let s = statFields(pid), s.fields.count > 19 else { return nil }
        return String(decoding: s.bytes[s.fields[19]], as: UTF8.self)
    }

    /// The start time as a number, for comparisons in scans.
    private func startTicks(of pid: pid_t) -> UInt64? {
        guard let s = statFields(pid), s.fields.count > 19 else { return nil }
        return number(s.bytes, s.fields[19])
    }

    func snapshot() -> [ProcessEntry] {
        allPIDs().compactMap { pid in
            guard let s = statFields(pid), s.fields.count > 21, let ppid = number(s.bytes, s.fields[1]), let pgid = number(s.bytes, s.fields[2]) else { return nil }
            let rssPages = number(s.bytes, s.fields[21]) ?? 0
            return ProcessEntry(pid: pid, ppid: pid_t(truncatingIfNeeded: ppid), pgid: pid_t(truncatingIfNeeded: pgid), residentBytes: rssPages * Self.pageSize)
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
            if let after, let s = startTicks(of: pid), s < after { continue }
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
