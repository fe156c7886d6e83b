import DroverProtocol
import DroverCore
import DroverInventory
import DroverSSH
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What `drover hosts` learns about one host.
public struct HostReport: Sendable, Codable, Equatable {
    public var name: String
    /// `address:port` (or "local"), followed by ` via h1` (` via a,b`) through hops.
    public var address: String
    /// The hops to the host, first one first (empty for a direct connection).
    public var via: [String] = []
    /// `up`, or why not: unreachable, timed out, auth refused, host key mismatch, unknown host key, …
    public var state: String
    /// The full message when the host is not up.
    public var error: String?
    public var os: String?
    public var arch: String?
    public var cpus: Int?
    public var memoryBytes: UInt64?
    /// The agent version from the host's heartbeat; nil until deployed.
    public var agentVersion: String?
    /// Seconds since the agent's last heartbeat, by the host's own clock; nil without one.
    public var heartbeatAgeSeconds: Double?
    /// One network round trip on the established connection, in milliseconds.
    public var latencyMs: Double?
    /// Job slots (the inventory's `slots`, else the CPU count).
    public var slots: Int?
    /// Slots taken by live attempts, by the running coordinator's journal; nil without one.
    public var usedSlots: Int?
    /// The running coordinator's view from heartbeats: up, suspect, down, connecting, reconciling.
    public var liveness: String?
    /// The host's machine id (`/etc/machine-id`, `/var/lib/dbus/machine-id`, macOS `kern.uuid`,
    /// else `host:<hostname>`), as its agent reports it.
    public var machineID: String?
    /// The host's boot id and host name (`uname -n`): with the machine id they tell one running
    /// system; clones of one disk image that kept its machine id differ in them.
    public var bootID: String?
    public var hostname: String?
    /// An earlier host of the same probe that is the same system (same machine id, boot id
    /// and host name): one machine under two names.
    public var sameMachineAs: String?
    /// How many coordinators hold a live lease on the host's agent (from its heartbeat); nil
    /// without a running agent.
    public var coordinators: Int?
    /// The host name of another machine whose agent beats in this host's root (a root shared
    /// through a shared home): that heartbeat is not this host's agent.
    public var rootUsedBy: String?
    /// The host's quarantine (by the coordinator's circuit breaker or a person), from the journal; nil when it is not quarantined.
    public var quarantine: QuarantineRecord?
    /// The host's facts as its agent last reported them (OS release, kernel, CPU model, GPUs and
    /// the inventory's facts), from the journal or collected by `drover hosts --facts`; nil: never collected.
    public var facts: HostFactsView?
    /// The load average over 1 minute and the memory available, from the agent's heartbeat; nil without one (or an older agent).
    public var load1: Double?
    public var memoryAvailableBytes: UInt64?
    public var isUp: Bool { state == "up" }

    enum CodingKeys: String, CodingKey {
        case name, address, via, state, error, os, arch, cpus, slots, liveness
        case usedSlots = "used_slots"
        case memoryBytes = "memory_bytes"
        case agentVersion = "agent_version"
        case heartbeatAgeSeconds = "heartbeat_age_seconds"
        case latencyMs = "latency_ms"
        case machineID = "machine_id"
        case sameMachineAs = "same_machine_as"
        case bootID = "boot_id"
        case hostname
        case coordinators
        case rootUsedBy = "root_used_by"
        case quarantine, facts, load1
        case memoryAvailableBytes = "memory_available_bytes"
    }

    /// Every key is written, with `null` for what is unknown, so scripts can rely on the shape.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(address, forKey: .address)
        try c.encode(via, forKey: .via)
        try c.encode(state, forKey: .state)
        try c.encode(error, forKey: .error)
        try c.encode(os, forKey: .os)
        try c.encode(arch, forKey: .arch)
        try c.encode(cpus, forKey: .cpus)
        try c.encode(memoryBytes, forKey: .memoryBytes)
        try c.encode(slots, forKey: .slots)
        try c.encode(usedSlots, forKey: .usedSlots)
        try c.encode(liveness, forKey: .liveness)
        try c.encode(agentVersion, forKey: .agentVersion)
        try c.encode(heartbeatAgeSeconds, forKey: .heartbeatAgeSeconds)
        try c.encode(latencyMs, forKey: .latencyMs)
        try c.encode(machineID, forKey: .machineID)
        try c.encode(bootID, forKey: .bootID)
        try c.encode(hostname, forKey: .hostname)
        try c.encode(sameMachineAs, forKey: .sameMachineAs)
        try c.encode(coordinators, forKey: .coordinators)
        try c.encode(rootUsedBy, forKey: .rootUsedBy)
        try c.encode(quarantine, forKey: .quarantine)
        try c.encode(facts, forKey: .facts)
        try c.encode(load1, forKey: .load1)
        try c.encode(memoryAvailableBytes, forKey: .memoryAvailableBytes)
    }
}

/// Connects to hosts and reads their OS, architecture, CPUs, memory and agent version.
public struct HostProbe: Sendable {
    public var options: SSHOptions

    public init(options: SSHOptions = SSHOptions()) {
        self.options = options
    }

    /// Probes every host in parallel; each is bounded by its own connect timeout.
    public func probe(_ hosts: [HostSpec]) async -> [HostReport] {
        await withTaskGroup(of: (Int, HostReport).self) { group in
            for (i, host) in hosts.enumerated() {
                group.addTask { (i, await probe(host)) }
            }
            var out = [HostReport?](repeating: nil, count: hosts.count)
            for await (i, r) in group { out[i] = r }
            return Self.markSameMachines(out.compactMap { $0 })
        }
    }

    /// Sets `sameMachineAs` on every report that is the same system as an earlier report.
    public static func markSameMachines(_ reports: [HostReport]) -> [HostReport] {
        var first: [String: String] = [:]
        return reports.map { r in
            var r = r
            guard let m = r.machineID, !m.isEmpty else { return r }
            let key = systemKey(machineID: m, bootID: r.bootID, hostname: r.hostname)
            if let earlier = first[key] { r.sameMachineAs = earlier } else { first[key] = r.name }
            return r
        }
    }

    /// What must be equal for two hosts to be one running system.
    public static func systemKey(machineID: String, bootID: String?, hostname: String?) -> String {
        "\(machineID)|\(bootID ?? "")|\(hostname ?? "")"
    }

    /// The shell line that prints the machine id as `machine_id=…`, in the agent's order
    /// (`MachineIdentity`): systemd's, D-Bus's, macOS's hardware UUID, else the host name.
    public static let machineIDCommand = """
        m=$(head -n 1 /etc/machine-id 2>/dev/null); [ -n "$m" ] || m=$(head -n 1 /var/lib/dbus/machine-id 2>/dev/null); \
        [ -n "$m" ] || m=$(sysctl -n kern.uuid 2>/dev/null); [ -n "$m" ] || m="host:$(uname -n)"; echo "machine_id=$m"; \
        echo "boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || sysctl -n kern.boottime 2>/dev/null | tr -d '\\n')"; \
        echo "hostname=$(uname -n)"
        """

    /// Probes one host.
    public func probe(_ host: HostSpec) async -> HostReport {
        switch host.transport {
        case .local: return probeLocal(host)
        case .ssh: return await probeSSH(host)
        }
    }

    /// The shell line that reports the facts, one `key=value` per line.
    static func probeCommand(root: String) -> String {
        let heartbeat = RemotePath.shell(root.hasSuffix("/") ? root + "heartbeat" : root + "/heartbeat")
        return [
            "echo os=$(uname -s)",
            "echo arch=$(uname -m)",
            "echo cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null)",
            "echo mem=$( (awk '/^MemTotal:/ {printf \"%.0f\", $2*1024}' /proc/meminfo 2>/dev/null) || sysctl -n hw.memsize 2>/dev/null)",
            "printf 'heartbeat='; head -c 4096 \(heartbeat) 2>/dev/null | tr -d '\\n'; echo",
            "echo now=$(date +%s)",
            machineIDCommand,
        ].joined(separator: "; ")
    }

    func probeSSH(_ host: HostSpec) async -> HostReport {
        var report = HostReport(name: host.name, address: host.route, state: "up")
        report.via = host.via
        report.slots = host.slots
        let connection: SSHConnection
        do {
            connection = try await SSHConnection.connect(to: host.sshTarget, options: options)
        } catch {
            report.state = error.shortReason
            report.error = error.description
            return report
        }
        do {
            // The best of three: the first round trip on a new connection includes TCP warm-up.
            var best = Double.infinity
            for _ in 0..<3 { best = min(best, try await connection.ping()) }
            report.latencyMs = (best * 1000 * 100).rounded() / 100
            let result = try await connection.run(Self.probeCommand(root: host.root), timeout: max(host.connectTimeout, 10))
            let facts = Self.parseFacts(result.stdoutText)
            if let problem = Self.unparsable(facts, result) {
                report.state = "probe failed"
                report.error = "\(host.name): read the host's facts: \(problem)"
            } else {
                apply(facts, to: &report)
            }
        } catch {
            report.state = error.shortReason
            report.error = error.description
        }
        await connection.shutdown()
        if report.slots == nil { report.slots = report.cpus }
        return report
    }

    func probeLocal(_ host: HostSpec) -> HostReport {
        var report = HostReport(name: host.name, address: "local", state: "up")
        var u = utsname()
        uname(&u)
        report.os = withUnsafeBytes(of: u.sysname) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        report.arch = withUnsafeBytes(of: u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        report.cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        report.memoryBytes = UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
        if let bytes = try? LocalFile.read(host.root + "/heartbeat"), let node = try? JSONParser.parse(bytes) {
            Self.apply(heartbeat: node, now: Date().timeIntervalSince1970, to: &report)
        }
        let me = MachineIdentity.current
        report.machineID = me.machineID
        report.bootID = me.bootID.isEmpty ? nil : me.bootID
        report.hostname = me.hostname
        report.latencyMs = 0
        report.slots = host.slots ?? report.cpus
        return report
    }

    /// Why a probe's output cannot be trusted (no OS or architecture in it), with what came back; nil when it can.
    static func unparsable(_ facts: [String: String], _ result: ExecResult) -> String? {
        if let os = facts["os"], !os.isEmpty, let arch = facts["arch"], !arch.isEmpty { return nil }
        var printed = (result.stdoutText + result.stderrText).trimmingCharacters(in: .whitespacesAndNewlines)
        if printed.count > 300 { printed = String(printed.prefix(300)) + "…" }
        return "no OS or architecture in what the host printed (\(result.status)): \(printed.isEmpty ? "nothing" : printed)"
    }

    /// `key=value` lines, as the probe shell lines print them.
    static func parseFacts(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            out[String(line[..<eq])] = String(line[line.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
        }
        return out
    }

    func apply(_ facts: [String: String], to report: inout HostReport) {
        report.os = facts["os"].flatMap { $0.isEmpty ? nil : $0 }
        report.arch = facts["arch"].flatMap { $0.isEmpty ? nil : $0 }
        report.cpus = facts["cpus"].flatMap { Int($0) }
        report.memoryBytes = facts["mem"].flatMap { UInt64($0) }
        let hb = facts["heartbeat"].flatMap { $0.isEmpty ? nil : try? JSONParser.parse($0) }
        if let hb {
            // Without the host's clock (`now`) no age or lease count: only the version.
            if let now = facts["now"].flatMap(Double.init) {
                Self.apply(heartbeat: hb, now: now, to: &report)
            } else {
                report.agentVersion = Self.agentVersion(hb)
            }
        }
        report.machineID = facts["machine_id"].flatMap { $0.isEmpty ? nil : $0 }
        report.bootID = facts["boot_id"].flatMap { $0.isEmpty ? nil : $0 }
        report.hostname = facts["hostname"].flatMap { $0.isEmpty ? nil : $0 }
        // A heartbeat from an agent of another machine (the root is in a shared home and that
        // machine uses the same one) says nothing about this host's agent.
        if let hb, let m = hb["machine_id"]?.stringValue,
           let name = hb["hostname"]?.stringValue, let mine = report.machineID,
           m != mine || (report.hostname.map { $0 != name } ?? false) {
            report.rootUsedBy = name
            report.agentVersion = nil
            report.heartbeatAgeSeconds = nil
            report.coordinators = nil
        }
    }

    /// What a heartbeat (parsed once) tells of its agent: version, age by the host's clock
    /// (`now`), how many coordinators hold a live lease, load and available memory.
    static func apply(heartbeat node: JSONNode, now: Double, to report: inout HostReport) {
        report.agentVersion = agentVersion(node)
        let t = node["time"]?.doubleValue
        report.heartbeatAgeSeconds = t.map { max(0, (now - $0).rounded()) }
        // A stale heartbeat is an agent that no longer runs: it serves no coordinator.
        if let list = node["coordinators"]?.arrayValue {
            let interval = node["interval"]?.doubleValue ?? 1
            report.coordinators = now - (t ?? 0) < max(3 * interval, 5) ? list.count : 0
        }
        let load = HostLoad(heartbeat: node)
        report.load1 = load.load1
        report.memoryAvailableBytes = load.memoryAvailableBytes
    }

    /// The `version` field of a heartbeat.
    static func agentVersion(_ node: JSONNode) -> String? {
        node.objectMembers?.first { $0.key == "version" }?.value.stringValue
    }
}

/// A host's facts as `drover hosts` shows them.
public struct HostFactsView: Sendable, Codable, Equatable {
    public var os: String?
    public var kernel: String?
    public var cpu: String?
    public var gpus: [String]
    /// Each inventory fact's value.
    public var values: [String: String]
    /// Facts that could not be collected, with why.
    public var errors: [String: String]
    /// When they were collected (Unix seconds).
    public var collectedAt: Double

    public init(_ report: HostFactsReport, at time: Double) {
        os = report.os
        kernel = report.kernel
        cpu = report.cpu
        gpus = report.gpus
        values = report.values
        errors = report.errors
        collectedAt = time
    }

    enum CodingKeys: String, CodingKey {
        case os, kernel, cpu, gpus, values, errors
        case collectedAt = "collected_at"
    }
}
