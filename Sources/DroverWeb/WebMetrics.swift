import DroverCoordinator
import Foundation

/// `/metrics` in Prometheus' text format, written by hand from the journal at each scrape: the
/// figures are counts over the journal (which outlives any process), not counters a process
/// keeps, so swift-metrics/swift-prometheus (process-local registries) would add a build
/// dependency and a second source of truth for no gain.
struct WebMetrics {
    let site: Site

    static let latencyBuckets: [Double] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
    static let durationBuckets: [Double] = [1, 5, 15, 60, 300, 900, 3600, 14_400, 86_400]

    func text(now: Double = Date().timeIntervalSince1970) throws -> String {
        let (jobs, hosts, attempts) = try site.access.read { j in (try j.jobs(), try j.hosts(), try j.attemptCounts()) }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) { out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        family("drover_jobs", "gauge", "Jobs in the journal by state.")
        let byState = Dictionary(grouping: jobs, by: \.state).mapValues(\.count)
        for s in JobState.allCases { out += "drover_jobs{state=\"\(s.rawValue)\"} \(byState[s] ?? 0)\n" }
        family("drover_attempts", "gauge", "Attempts in the journal by coordinator state and the agent's final state (their reason).")
        for a in attempts.sorted(by: { ($0.state, $0.reason) < ($1.state, $1.reason) }) {
            out += "drover_attempts{state=\(Self.label(a.state)),agent_state=\(Self.label(a.reason))} \(a.count)\n"
        }
        family("drover_hosts", "gauge", "Hosts by state.")
        for (s, n) in Dictionary(grouping: hosts, by: \.state).mapValues(\.count).sorted(by: { $0.key < $1.key }) {
            out += "drover_hosts{state=\(Self.label(s))} \(n)\n"
        }
        family("drover_host_heartbeat_age_seconds", "gauge", "Seconds since each host's last heartbeat.")
        for h in hosts { if let t = h.heartbeatTime { out += "drover_host_heartbeat_age_seconds{host=\(Self.label(h.name))} \(Self.number(max(0, now - t)))\n" } }
        family("drover_host_slots_used", "gauge", "Slots used by live attempts on each host.")
        for h in hosts { out += "drover_host_slots_used{host=\(Self.label(h.name))} \(h.usedSlots)\n" }
        family("drover_host_load1", "gauge", "Each host's 1-minute load average, as of its last recorded heartbeat.")
        for h in hosts { if let l = h.load1 { out += "drover_host_load1{host=\(Self.label(h.name))} \(Self.number(l))\n" } }
        family("drover_host_memory_available_bytes", "gauge", "Memory available to new work on each host, as of its last recorded heartbeat.")
        for h in hosts { if let m = h.memoryAvailableBytes { out += "drover_host_memory_available_bytes{host=\(Self.label(h.name))} \(m)\n" } }
        family("drover_host_memory_total_bytes", "gauge", "Physical memory of each host.")
        for h in hosts { if let m = h.memoryTotalBytes { out += "drover_host_memory_total_bytes{host=\(Self.label(h.name))} \(m)\n" } }
        family("drover_dispatch_latency_seconds", "histogram", "From submission to the start of the first attempt.")
        out += Self.histogram("drover_dispatch_latency_seconds", jobs.compactMap { j in j.startedAt.map { max(0, $0 - j.submittedAt) } }, Self.latencyBuckets)
        family("drover_job_duration_seconds", "histogram", "Wall time of finished jobs (start of the last attempt to end).")
        out += Self.histogram("drover_job_duration_seconds", jobs.compactMap { j in j.state.isFinal ? j.startedAt.flatMap { s in j.endedAt.map { max(0, $0 - s) } } : nil }, Self.durationBuckets)
        family("drover_journal_bytes", "gauge", "Size of the coordinator's journal (database and write-ahead log).")
        let path = site.access.state.journalPath
        let size = [path, path + "-wal"].compactMap { (try? FileManager.default.attributesOfItem(atPath: $0))?[.size] as? NSNumber }.reduce(0) { $0 + $1.int64Value }
        out += "drover_journal_bytes \(size)\n"
        return out
    }

    static func histogram(_ name: String, _ values: [Double], _ buckets: [Double]) -> String {
        var out = ""
        for b in buckets { out += "\(name)_bucket{le=\"\(number(b))\"} \(values.filter { $0 <= b }.count)\n" }
        out += "\(name)_bucket{le=\"+Inf\"} \(values.count)\n\(name)_sum \(number(values.reduce(0, +)))\n\(name)_count \(values.count)\n"
        return out
    }

    /// A label value, quoted and escaped as the format says.
    static func label(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n") + "\""
    }

    static func number(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(format: "%.3f", d) }
}
