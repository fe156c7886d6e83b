import DroverCoordinator
import Foundation

/// What the inventory says of a host, beside the journal's record.
public struct HostFacts: Sendable {
    public var labels: [String: String]
    public var address: String
    public init(labels: [String: String], address: String) {
        self.labels = labels
        self.address = address
    }
}

/// Everything a request handler needs: the journal, the actions, the token, the inventory's facts.
public struct Site: Sendable {
    public let access: JournalAccess
    public let actions: any WebActions
    public let token: WebToken
    public let facts: [String: HostFacts]

    public init(access: JournalAccess, actions: any WebActions, token: WebToken, facts: [String: HostFacts]) {
        self.access = access
        self.actions = actions
        self.token = token
        self.facts = facts
    }

    func hostViews(now: Double = Date().timeIntervalSince1970) throws -> [HostView] {
        let (hosts, platforms, quarantines) = try access.read { j in
            (try j.hosts(), try j.hostFacts(), Dictionary(try j.quarantines().filter(\.isQuarantined).map { ($0.host, $0) }, uniquingKeysWith: { a, _ in a }))
        }
        return hosts.map { h in
            HostView(host: h, heartbeatAge: h.heartbeatTime.map { max(0, now - $0) }, labels: facts[h.name]?.labels ?? [:],
                     platform: platforms[h.name].map(PlatformView.init), quarantine: quarantines[h.name])
        }
    }

    /// A job by id or name, with its attempts.
    func jobDetail(_ reference: String) throws -> JobDetail? {
        try access.read { j in
            guard let job = try j.resolve(reference) else { return nil }
            return JobDetail(job: job, attempts: try j.attempts(of: job.id))
        }
    }

    func batchViews() throws -> [BatchView] {
        try access.read { j in try j.batches().map { BatchView($0, jobs: try j.batchJobs($0.name)) } }
    }

    func batch(_ name: String) throws -> (BatchView, [JobRecord])? {
        try access.read { j in
            guard let b = try j.batch(named: name) else { return nil }
            let jobs = try j.batchJobs(name)
            return (BatchView(b, jobs: jobs), jobs)
        }
    }
}
