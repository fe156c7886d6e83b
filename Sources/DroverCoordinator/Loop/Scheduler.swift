/// A host as the scheduler sees it.
public struct SchedulerHost: Sendable, Equatable {
    public var name: String
    public var slots: Int
    public var used: Int
    public var labels: [String: String]
    /// `up` and reconciled: new attempts may go there.
    public var usable: Bool

    public init(name: String, slots: Int, used: Int, labels: [String: String] = [:], usable: Bool = true) {
        self.name = name
        self.slots = slots
        self.used = used
        self.labels = labels
        self.usable = usable
    }

    public var free: Int { max(0, slots - used) }
}

/// A queued job as the scheduler sees it.
public struct SchedulerJob: Sendable, Equatable {
    public var id: Int
    public var slots: Int
    public var host: String?
    public var labels: [String: String]

    public init(id: Int, slots: Int = 1, host: String? = nil, labels: [String: String] = [:]) {
        self.id = id
        self.slots = slots
        self.host = host
        self.labels = labels
    }

    /// Whether `host` satisfies the job's placement constraints (ignoring free slots).
    public func fits(_ host: SchedulerHost) -> Bool {
        if let h = self.host, h != host.name { return false }
        for (k, v) in labels where host.labels[k] != v { return false }
        return host.slots >= slots
    }
}

/// Placement: which queued jobs go to which hosts now.
///
/// Jobs are taken in queue order (higher priority first, then oldest first). Each goes to
/// the eligible host with the largest share of free slots, so idle hosts fill first (spread).
/// A job that cannot start yet reserves the eligible host with the most free slots: no
/// later job is placed there in this round, so a job asking for many slots is not starved
/// by a stream of small ones slipping into every slot that frees up.
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
            let eligible = hosts.indices.filter { job.fits(hosts[$0]) && !reserved.contains(hosts[$0].name) }
            if eligible.isEmpty { continue }
            let open = eligible.filter { hosts[$0].free >= job.slots }
            if let best = open.max(by: { better(hosts[$1], than: hosts[$0]) }) {
                hosts[best].used += job.slots
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
