import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `owner.json`: which machine runs the agent of a state directory (docs/state-format.md,
/// "owner.json"). Homes shared over NFS put the same folders on several machines; the
/// record keeps an agent from running in, or taking work from, a state directory that an
/// agent of another machine still runs.
struct StateOwner: Sendable, Equatable {
    var machineID: String
    var bootID: String
    var hostname: String
    var pid: Int
    /// When the owner claimed the directory (its wall clock).
    var since: Double

    static func read(_ dir: StateDirectory) -> StateOwner? {
        guard let n = readJSON(dir.ownerFile), let m = n["machine_id"]?.stringValue, !m.isEmpty else { return nil }
        return StateOwner(machineID: m, bootID: n["boot_id"]?.stringValue ?? "", hostname: n["hostname"]?.stringValue ?? "?",
                          pid: n["pid"]?.intValue ?? 0, since: n["since"]?.doubleValue ?? 0)
    }

    var json: String {
        var o = JSONObject()
        o.set("format", StateDirectory.formatVersion)
        o.set("machine_id", machineID)
        o.set("boot_id", bootID)
        o.set("hostname", hostname)
        o.set("pid", pid)
        o.set("since", since)
        return o.text
    }

    /// Written atomically (temporary file, fsync, rename, fsync of the folder).
    func write(_ dir: StateDirectory) throws(AgentError) {
        do { try AtomicFile.write(Array((json + "\n").utf8), to: dir.ownerFile) } catch { throw .system(error) }
    }

    /// Whether the record is this very system: same machine id, same boot, same host name.
    /// The boot id tells apart clones of one disk image that kept its machine id (cloned VMs,
    /// containers), which would otherwise look like one machine; the host name tells apart
    /// systems that share a kernel (containers, the testbed's namespaces).
    func isSameSystem(as me: MachineIdentity) -> Bool {
        machineID == me.machineID && bootID == me.bootID && hostname == me.hostname
    }

    /// How `who` reads in messages: `box1 (machine id 3d1219c7c4c5…)`.
    var described: String { "\(hostname) (machine id \(machineID.prefix(12))\(machineID.count > 12 ? "…" : ""))" }
}

/// Who may use a state directory.
enum Ownership {
    /// What `claim` found.
    enum Claim: Equatable {
        /// No record (a directory from before owner records), or this very system's own.
        case ours
        /// Another system's agent owned it — another machine, or this machine in an earlier
        /// boot — and looks dead: its unfinished attempts' processes are not here (or no longer
        /// exist), so the new agent marks them lost without touching any local process.
        case takenOver(from: StateOwner)
    }

    /// Seconds without a heartbeat after which an agent of another machine counts as dead:
    /// five of its intervals, at least 15 s (the times are two machines' clocks: allow for skew).
    static func deadAfter(interval: Double) -> Double { max(5 * interval, 15) }

    /// The other machine's owner of `dir` whose agent looks alive (its heartbeat, or its claim,
    /// is fresh), with the age of that sign of life; nil when `dir` is ours or its owner looks dead.
    static func liveForeignOwner(_ dir: StateDirectory, me: MachineIdentity = .current) -> (owner: StateOwner, age: Double)? {
        guard let owner = StateOwner.read(dir), !owner.isSameSystem(as: me) else { return nil }
        var lastSign = owner.since
        var interval = 1.0
        if let hb = readJSON(dir.heartbeatFile), hb["machine_id"]?.stringValue ?? owner.machineID == owner.machineID,
           hb["hostname"]?.stringValue ?? owner.hostname == owner.hostname {
            lastSign = max(lastSign, hb["time"]?.doubleValue ?? 0)
            interval = hb["interval"]?.doubleValue ?? 1
        }
        let age = wallTime() - lastSign
        return age < deadAfter(interval: interval) ? (owner, max(0, age)) : nil
    }

    /// The refusal for a directory another live machine owns: one line with the path, the
    /// owner and what to do.
    static func refusal(_ dir: StateDirectory, owner: StateOwner, age: Double, me: MachineIdentity = .current) -> AgentError {
        .foreignOwner("""
            refusing the state directory \(dir.root): it belongs to the agent of another machine, \(owner.described), \
            whose heartbeat is \(Int(age.rounded())) s old, and this is \(me.described); machines that share a home \
            (NFS) need a state directory each: use the default root (~/.drover/%h, one folder per inventory host) \
            or give each host its own `root` in hosts.json (e.g. "~/.drover/%h"); if that machine is really gone, \
            remove \(dir.ownerFile) or wait \(Int(deadAfter(interval: 1))) s after its last heartbeat
            """)
    }

    /// Refuses `dir` when an agent of another machine runs in it (inbox commands, `run`).
    static func checkNotForeign(_ dir: StateDirectory) throws(AgentError) {
        if let (owner, age) = liveForeignOwner(dir) { throw refusal(dir, owner: owner, age: age) }
    }

    /// Makes this machine the owner of `dir` (called by `run` with the agent lock held):
    /// refuses a directory another live machine owns, takes over one whose owner looks dead.
    static func claim(_ dir: StateDirectory, me: MachineIdentity = .current) throws(AgentError) -> Claim {
        if let (owner, age) = liveForeignOwner(dir, me: me) { throw refusal(dir, owner: owner, age: age, me: me) }
        let previous = StateOwner.read(dir)
        try StateOwner(machineID: me.machineID, bootID: me.bootID, hostname: me.hostname, pid: Int(getpid()), since: wallTime()).write(dir)
        guard let previous, !previous.isSameSystem(as: me) else { return .ours }
        // Same machine and same boot, only the host name differs: most likely this system was
        // renamed, and its jobs' processes are here. Re-adopt them as after any restart.
        if previous.machineID == me.machineID && previous.bootID == me.bootID && !me.bootID.isEmpty { return .ours }
        return .takenOver(from: previous)
    }

    /// Whether `dir` is still this machine's (a running agent checks every second: another
    /// machine that judged it dead may have taken the directory over).
    static func takenOverBy(_ dir: StateDirectory, me: MachineIdentity = .current) -> StateOwner? {
        guard let owner = StateOwner.read(dir), !owner.isSameSystem(as: me) else { return nil }
        return owner
    }
}
