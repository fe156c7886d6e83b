import DroverCore

/// A host as the scheduler sees it.
public struct SchedulerHost: Sendable, Equatable {
    public var name: String
    public var slots: Int
    public var used: Int
    public var labels: [String: String]
    /// `up` and reconciled: new attempts may go there.
    public var usable: Bool
    /// At most this many new jobs in this round (a quarantined host's probe: 1); nil: no limit.
    public var limit: Int?
    /// GPUs the host offers, and how many live attempts hold.
    public var gpus: Int
    public var gpusUsed: Int

    public init(name: String, slots: Int, used: Int, labels: [String: String] = [:], usable: Bool = true, limit: Int? = nil, gpus: Int = 0, gpusUsed: Int = 0) {
        self.name = name
        self.slots = slots
        self.used = used
        self.labels = labels
        self.usable = usable
        self.limit = limit
        self.gpus = gpus
        self.gpusUsed = gpusUsed
    }

    public var free: Int { max(0, slots - used) }
    public var gpusFree: Int { max(0, gpus - gpusUsed) }
}

/// A queued job as the scheduler sees it.
public struct SchedulerJob: Sendable, Equatable {
    public var id: Int
    public var slots: Int
    public var host: String?
    /// Only one of these hosts (`drover map -S h1,h3`); nil: any.
    public var hosts: Set<String>?
    public var labels: [String: String]
    /// Hosts where the job failed before: it goes there only when no other host fits.
    public var avoid: Set<String>
    /// A host to take when it fits and has room (a job that asked to be restarted from its
    /// checkpoint goes back where its files are warm); otherwise placement as usual.
    public var prefer: String?
    public var gpus: Int
    /// Host facts it needs (checked against the host's labels, which hold its facts).
    public var requirements: [FactRequirement]

    public init(id: Int, slots: Int = 1, host: String? = nil, labels: [String: String] = [:], avoid: Set<String> = [], prefer: String? = nil,
                gpus: Int = 0, requirements: [FactRequirement] = [], hosts: Set<String>? = nil) {
        self.id = id
        self.hosts = hosts
        self.slots = slots
        self.host = host
        self.labels = labels
        self.avoid = avoid
        self.prefer = prefer
        self.gpus = gpus
        self.requirements = requirements
    }

    /// Whether `host` satisfies the job's placement constraints (ignoring free slots).
    public func fits(_ host: SchedulerHost) -> Bool {
        misfit(host) == nil
    }

    /// Why `host` can never take the job (`python is 3.9.2, needs >=3.11`, `has 1 GPU(s), needs 2`), or nil when it fits.
    public func misfit(_ host: SchedulerHost) -> String? {
        if let h = self.host, h != host.name { return "not the host asked for (\(h))" }
        if let hs = hosts, !hs.contains(host.name) { return "not one of the hosts asked for (\(hs.sorted().joined(separator: ",")))" }
        for (k, v) in labels.sorted(by: { $0.key < $1.key }) where host.labels[k] != v {
            return "label \(k) is \(host.labels[k].map { "\"\($0)\"" } ?? "not set"), needs \"\(v)\""
        }
        if host.slots < slots { return "has \(host.slots) slot(s), needs \(slots)" }
        if host.gpus < gpus { return "has \(host.gpus) GPU(s), needs \(gpus)" }
        for r in requirements { if let p = r.problem(with: host.labels) { return p } }
        return nil
    }
}

/// Placement: which queued jobs go to which hosts now.
///
/// Jobs are taken in queue order (higher priority first, then oldest first). Each goes to
/// the eligible host with the largest share of free slots, so idle hosts fill first (spread).
/// A job that cannot start yet reserves the eligible host with the most free slots: no
/// later job is placed there in this round, so a job asking for many slots is not starved
/// by a stream of small ones slipping into every slot that frees up. A retried job considers
/// only the hosts where it has not failed yet when any of them fits (it waits for one of them
/// rather than go back to where it failed), as GNU parallel's `--retries` does. A job with a
/// preferred host (restarted from its checkpoint at its own request) goes there when it has room.
public enum Scheduler {
    public struct Placement: Sendable, Equatable {
        public var job: Int
        public var host: String
    }

    public static func place(_ jobs: [SchedulerJob], on hosts: [SchedulerHost]) -> [Placement] {
        var hosts = hosts.filter(\.usable)
        var reserved = Set<String>()
        var out: [Placement] = []
        for job in jobs {
            if reserved.count == hosts.count { break }
            // Where it failed counts only when no other host fits at all (a host reserved this
            // round still fits: the job waits for it rather than go back where it failed).
            let fitting = hosts.indices.filter { job.fits(hosts[$0]) && hosts[$0].limit != 0 }
            let fresh = fitting.filter { !job.avoid.contains(hosts[$0].name) }
            let eligible = (fresh.isEmpty ? fitting : fresh).filter { !reserved.contains(hosts[$0].name) }
            if eligible.isEmpty { continue }
            let open = eligible.filter { hosts[$0].free >= job.slots && hosts[$0].gpusFree >= job.gpus }
            let preferred = job.prefer.flatMap { name in open.first { hosts[$0].name == name } }
            if let best = preferred ?? open.max(by: { better(hosts[$1], than: hosts[$0]) }) {
                hosts[best].used += job.slots
                hosts[best].gpusUsed += job.gpus
                hosts[best].limit = hosts[best].limit.map { $0 - 1 }
                out.append(Placement(job: job.id, host: hosts[best].name))
            } else if let hold = eligible.max(by: { hosts[$0].free < hosts[$1].free || (hosts[$0].free == hosts[$1].free && hosts[$0].name > hosts[$1].name) }) {
                reserved.insert(hosts[hold].name)
            }
        }
        return out
    }

    /// Whether `a` is a better home than `b`: a larger free share, then more free slots, then name order.
    static func better(_ a: SchedulerHost, than b: SchedulerHost) -> Bool {
        let fa = Double(a.free) / Double(max(a.slots, 1)), fb = Double(b.free) / Double(max(b.slots, 1))
        if fa != fb { return fa > fb }
        if a.free != b.free { return a.free > b.free }
        return a.name < b.name
    }
}
