import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A cgroup v2 per attempt, where this user may create one: every process of the job is
/// born inside it (the child joins before exec), so none can leave it, and `cgroup.kill`
/// ends them all at once. Absent on macOS and where cgroup v2 is not writable; the process
/// group, the subreaper and the cookie still find everything there.
struct JobCgroup {
    let path: String

    var procsFile: String { path + "/cgroup.procs" }

    /// Creates the attempt's cgroup under this process's own cgroup v2, or nil where that is not possible.
    static func create(name: String) -> JobCgroup? {
        #if os(Linux)
        if LocalUser.environment("DROVER_AGENT_CGROUP") == "off" { return nil }
        guard let base = ownCgroupDirectory() else { return nil }
        let path = base + "/" + name
        guard mkdir(path, 0o700) == 0 || errno == EEXIST else { return nil }
        // The shim itself stays outside; the job joins in the child before exec.
        guard access(path + "/cgroup.procs", W_OK) == 0 else {
            rmdir(path)
            return nil
        }
        return JobCgroup(path: path)
        #else
        return nil
        #endif
    }

    /// The cgroup a shim created under `name`, if it still exists (for the agent's cleanup of a lost attempt).
    static func existing(name: String) -> JobCgroup? {
        #if os(Linux)
        guard let base = ownCgroupDirectory(), LocalFile.exists(base + "/" + name) else { return nil }
        return JobCgroup(path: base + "/" + name)
        #else
        return nil
        #endif
    }

    /// The cgroup name of an attempt: unique per root, job and attempt.
    static func name(for dir: StateDirectory, _ id: AttemptID) -> String {
        "drover-" + String(dir.cookie(id).dropFirst("DROVER_COOKIE=".count).map { $0 == "/" ? "-" : $0 })
    }

    /// Pids currently in the cgroup.
    func pids() -> [pid_t] {
        guard let bytes = try? LocalFile.read(procsFile) else { return [] }
        return bytes.split(separator: 0x0A).compactMap { pid_t(String(decoding: $0, as: UTF8.self)) }
    }

    /// Kills every process in it (`cgroup.kill` where the kernel has it, else one by one).
    func killAll() {
        let killFile = path + "/cgroup.kill"
        if LocalFile.exists(killFile), (try? write("1", to: killFile)) != nil { return }
        for pid in pids() { kill(pid, SIGKILL) }
    }

    /// Removes the (empty) cgroup.
    func remove() {
        rmdir(path)
    }

    private func write(_ text: String, to file: String) throws(SystemError) {
        let fd = open(file, O_WRONLY | O_CLOEXEC)
        if fd < 0 { throw SystemError.current("open", path: file) }
        defer { close(fd) }
        try AtomicFile.writeAll(fd, Array(text.utf8), path: file)
    }

    /// Finds the agent's cgroup once and hands it to the shims it starts (through
    /// `DROVER_CGROUP_ROOT`, or `DROVER_AGENT_CGROUP=off` when there is none): each shim
    /// would otherwise read /proc/self/mountinfo at every job's start. Shims stay in the
    /// agent's cgroup, so the answer is theirs too.
    static func handDownToShims() {
        #if os(Linux)
        guard LocalUser.environment("DROVER_AGENT_CGROUP") != "off", LocalUser.environment("DROVER_CGROUP_ROOT") == nil else { return }
        if let base = ownCgroupDirectory() {
            setenv("DROVER_CGROUP_ROOT", base, 1)
        } else {
            setenv("DROVER_AGENT_CGROUP", "off", 1)
        }
        #endif
    }

    #if os(Linux)
    /// The directory of this process's cgroup in the cgroup v2 hierarchy, if one is mounted.
    private static func ownCgroupDirectory() -> String? {
        if let explicit = LocalUser.environment("DROVER_CGROUP_ROOT") { return explicit }
        guard let cg = try? LocalFile.read("/proc/self/cgroup") else { return nil }
        var relative: String?
        for line in String(decoding: cg, as: UTF8.self).split(separator: "\n") where line.hasPrefix("0::") {
            relative = String(line.dropFirst(3))
        }
        guard let relative, let mounts = try? LocalFile.read("/proc/self/mountinfo") else { return nil }
        for line in String(decoding: mounts, as: UTF8.self).split(separator: "\n") {
            // "... mountpoint options - cgroup2 source superoptions"
            let parts = line.split(separator: " ")
            guard let dash = parts.firstIndex(of: "-"), dash + 1 < parts.count, parts[dash + 1] == "cgroup2", parts.count > 4 else { continue }
            let mountPoint = String(parts[4])
            return relative == "/" ? mountPoint : mountPoint + relative
        }
        return nil
    }
    #endif
}
