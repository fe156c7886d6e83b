#if os(macOS)
import Darwin
import DroverCore

/// macOS: the process table from `sysctl(KERN_PROC_ALL)`, environments from
/// `KERN_PROCARGS2`, resident size from `proc_pidinfo`. (No subreaper or cgroups on macOS:
/// the process group and the cookie find what a job started.)
///
/// Written against the macOS SDK; Linux CI cannot compile it, so the portable `ps` table
/// remains the fallback (`DROVER_AGENT_PLATFORM=portable`).
struct DarwinProcessTable: ProcessTable {
    private func allProcesses() -> [kinfo_proc] {
        var mib: [Int32] = [CTL_KERN, KERN_PROC, KERN_PROC_ALL, 0]
        var size = 0
        guard sysctl(&mib, 4, nil, &size, nil, 0) == 0 else { return [] }
        var procs = [kinfo_proc](repeating: kinfo_proc(), count: size / MemoryLayout<kinfo_proc>.stride + 16)
        size = procs.count * MemoryLayout<kinfo_proc>.stride
        guard sysctl(&mib, 4, &procs, &size, nil, 0) == 0 else { return [] }
        return Array(procs.prefix(size / MemoryLayout<kinfo_proc>.stride))
    }

    func startTime(of pid: pid_t) -> String? {
        var mib: [Int32] = [CTL_KERN, KERN_PROC, KERN_PROC_PID, pid]
        var info = kinfo_proc()
        var size = MemoryLayout<kinfo_proc>.stride
        guard sysctl(&mib, 4, &info, &size, nil, 0) == 0, size > 0 else { return nil }
        let t = info.kp_proc.p_un.__p_starttime
        return "\(t.tv_sec).\(t.tv_usec)"
    }

    func snapshot() -> [ProcessEntry] {
        allProcesses().map { p in
            var task = proc_taskinfo()
            let n = proc_pidinfo(p.kp_proc.p_pid, PROC_PIDTASKINFO, 0, &task, Int32(MemoryLayout<proc_taskinfo>.size))
            return ProcessEntry(pid: p.kp_proc.p_pid, ppid: p.kp_eproc.e_ppid, pgid: p.kp_eproc.e_pgid,
                                residentBytes: n > 0 ? task.pti_resident_size : 0)
        }
    }

    func descendants(of pid: pid_t) -> Set<pid_t> { descendantsFromSnapshot(of: pid) }

    func cookies(withPrefix prefix: String, startedAfter: String?) -> [(pid: pid_t, cookie: String)] {
        let needle = Array(prefix.utf8)
        var out: [(pid_t, String)] = []
        for p in allProcesses() {
            let pid = p.kp_proc.p_pid
            guard let env = environment(of: pid) else { continue }
            for entry in env where entry.starts(with: needle) {
                out.append((pid, String(decoding: entry, as: UTF8.self)))
                break
            }
        }
        return out
    }

    /// The environment strings of a process (this user's processes only), from KERN_PROCARGS2:
    /// argc, the executable path, NUL padding, argv, then the environment.
    private func environment(of pid: pid_t) -> [[UInt8]]? {
        var mib: [Int32] = [CTL_KERN, KERN_PROCARGS2, pid]
        var size = 0
        guard sysctl(&mib, 3, nil, &size, nil, 0) == 0, size > 4 else { return nil }
        var buffer = [UInt8](repeating: 0, count: size)
        guard sysctl(&mib, 3, &buffer, &size, nil, 0) == 0 else { return nil }
        let argc = buffer.withUnsafeBytes { $0.load(as: Int32.self) }
        var strings = buffer[4..<size].split(separator: 0, omittingEmptySubsequences: true).map(Array.init)
        guard strings.count > Int(argc) else { return [] }
        strings.removeFirst(Int(argc) + 1)  // the executable path and argv
        return strings
    }
}
#endif
