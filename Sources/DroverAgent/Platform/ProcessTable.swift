import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One process as the agent sees it.
struct ProcessEntry: Sendable {
    var pid: pid_t
    var ppid: pid_t
    var pgid: pid_t
    var residentBytes: UInt64
}

/// What the agent needs to know about the host's processes, one implementation per platform:
/// `LinuxProcessTable` (/proc), `DarwinProcessTable` (sysctl), and `PortableProcessTable`
/// (POSIX `ps`, for any other Unix and, with `DROVER_AGENT_PLATFORM=portable`, on Linux too so
/// the tests exercise it).
protocol ProcessTable: Sendable {
    /// An identity of the process's start, so a reused pid is not mistaken for it.
    func startTime(of pid: pid_t) -> String?
    /// Every process this user can see.
    func snapshot() -> [ProcessEntry]
    /// Every descendant of `pid` (children, their children, …).
    func descendants(of pid: pid_t) -> Set<pid_t>
    /// Pids whose environment holds a variable starting with `prefix`, with that variable;
    /// with `startedAfter` (a `startTime`), only processes started no earlier are read.
    func cookies(withPrefix prefix: String, startedAfter: String?) -> [(pid: pid_t, cookie: String)]
}

extension ProcessTable {
    /// The portable way: walk parent links in a snapshot.
    func descendantsFromSnapshot(of pid: pid_t) -> Set<pid_t> {
        snapshotDescendants(of: [pid], in: snapshot())
    }

    func cookies(withPrefix prefix: String) -> [(pid: pid_t, cookie: String)] {
        cookies(withPrefix: prefix, startedAfter: nil)
    }
}

enum Platform {
    /// The process table for this host.
    static let processes: any ProcessTable = {
        if LocalUser.environment("DROVER_AGENT_PLATFORM") == "portable" { return PortableProcessTable() }
        #if os(Linux)
        return LinuxProcessTable()
        #elseif os(macOS)
        return DarwinProcessTable()
        #else
        return PortableProcessTable()
        #endif
    }()

    /// The name of the implementation in use (shown by `status`).
    static var processTableName: String {
        if processes is PortableProcessTable { return "portable (ps)" }
        #if os(Linux)
        return "linux (/proc, subreaper, cgroup v2 where writable)"
        #else
        return "macOS (sysctl, proc_pidinfo)"
        #endif
    }

    /// Changes on every boot, so a heartbeat from before a reboot is recognisable.
    static func bootID() -> String { MachineIdentity.current.bootID }

    static var cpuCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

/// Every descendant of the `roots` in a snapshot, following parent links.
func snapshotDescendants(of roots: Set<pid_t>, in snapshot: [ProcessEntry]) -> Set<pid_t> {
    var found = Set<pid_t>()
    var frontier = roots
    while !frontier.isEmpty {
        let next = Set(snapshot.filter { frontier.contains($0.ppid) && !found.contains($0.pid) && !roots.contains($0.pid) }.map(\.pid))
        found.formUnion(next)
        frontier = next
    }
    return found
}

extension String {
    /// Trims the given characters from both ends (no Foundation needed).
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}

/// Runs a program and returns its stdout, or nil when it cannot run or fails.
func captureOutput(_ argv: [String]) -> String? {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { return nil }
    let devnull = open("/dev/null", O_RDWR)
    defer { close(devnull) }
    let pid = argv.withCStrings { args in
        environmentCStrings { env in
            var err: Int32 = 0
            return drover_spawn_job_wrapper(argv[0], args, env, nil, devnull, fds[1], devnull, 0, &err)
        }
    }
    close(fds[1])
    var out = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { posixRead(fds[0], $0.baseAddress, 65536) }
        if n <= 0 { if n < 0 && errno == EINTR { continue }; break }
        out += buffer[0..<n]
    }
    close(fds[0])
    guard pid > 0 else { return nil }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return String(decoding: out, as: UTF8.self)
}
