import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Uses only POSIX `ps`, so it works on macOS and any Unix; slower than /proc (one `ps` run
/// per question). Linux tests run the agent with it too (`DROVER_AGENT_PLATFORM=portable`).
struct PortableProcessTable: ProcessTable {
    private static let ps = LocalFile.exists("/bin/ps") ? "/bin/ps" : "/usr/bin/ps"

    func startTime(of pid: pid_t) -> String? {
        guard let out = captureOutput([Self.ps, "-o", "lstart=", "-p", String(pid)]) else { return nil }
        let t = out.trimmingCharacters(in: "\n ")
        return t.isEmpty ? nil : t
    }

    func snapshot() -> [ProcessEntry] {
        guard let out = captureOutput([Self.ps, "-A", "-o", "pid=,ppid=,pgid=,rss="]) else { return [] }
        return out.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count >= 4, let pid = Int32(f[0]), let ppid = Int32(f[1]), let pgid = Int32(f[2]) else { return nil }
            return ProcessEntry(pid: pid, ppid: ppid, pgid: pgid, residentBytes: (UInt64(f[3]) ?? 0) * 1024)
        }
    }

    func descendants(of pid: pid_t) -> Set<pid_t> { descendantsFromSnapshot(of: pid) }

    func cookies(withPrefix prefix: String, startedAfter: String?) -> [(pid: pid_t, cookie: String)] {
        // `ps e` appends each process's environment to its command (for this user's processes).
        guard let out = captureOutput([Self.ps, "-A", "-ww", "e", "-o", "pid=,command="]) else { return [] }
        var found: [(pid_t, String)] = []
        for line in out.split(separator: "\n") {
            let trimmed = line.drop { $0 == " " }
            guard let space = trimmed.firstIndex(of: " "), let pid = Int32(trimmed[..<space]) else { continue }
            for word in trimmed[space...].split(separator: " ") where word.hasPrefix(prefix) {
                found.append((pid, String(word)))
                break
            }
        }
        return found
    }
}
