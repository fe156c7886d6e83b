import DroverCore
import DroverInventory
import DroverProtocol
import Foundation

/// Host facts and GPUs in placement (docs/inventory.md#gpus, #facts): each host's facts, as
/// its agent reports them when its link connects, are kept in the journal and serve as labels
/// (the inventory's labels win); a job's `require` is checked against them, and its `gpus`
/// against the host's GPUs like slots.
extension Coordinator {
    /// The facts of every host, read from the journal once.
    func knownFacts() -> [String: HostFactsReport] {
        if let facts { return facts }
        let read = ((try? journal.hostFacts()) ?? [:]).mapValues(\.report)
        facts = read
        return read
    }

    /// An agent reported its host's facts: recorded (and audited when they changed).
    func recordFacts(_ host: String, _ report: HostFactsReport) {
        let before = knownFacts()[host]
        do {
            try journal.db.transaction {
                try journal.setFacts(host, report, at: wallNow)
                if before != report {
                    let values = report.values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                    let failed = report.errors.sorted { $0.key < $1.key }.map { "\($0.key) failed (\($0.value))" }
                    try journal.audit("host", host: host, "facts of \(host): \(report.os ?? "OS unknown"), kernel \(report.kernel ?? "?"), \(report.gpus.count) GPU(s)"
                                      + (values.isEmpty ? "" : "; " + values.joined(separator: ", ")) + (failed.isEmpty ? "" : "; " + failed.joined(separator: ", ")))
                }
            }
        } catch {
            log("\(host): recording its facts: \(error)")
            return
        }
        facts?[host] = report
        if before != report {
            agenda.schedule = true
            doorbell.ring()
        }
    }

    /// The host's labels for placement: its facts, with the inventory's labels over them.
    func placementLabels(_ host: HostSpec) -> [String: String] {
        (knownFacts()[host.name]?.all ?? [:]).merging(host.labels) { _, inventory in inventory }
    }

    /// How many GPUs jobs may use on the host: the inventory's `gpus`, else what its agent detected.
    func gpuCount(_ host: HostSpec) -> Int {
        host.gpus?.count ?? knownFacts()[host.name]?.gpus.count ?? 0
    }

    func schedulerJob(_ job: JobRecord, avoid: Set<String>, prefer: String? = nil) -> SchedulerJob {
        SchedulerJob(id: job.id, slots: job.request.slots, host: job.request.host, labels: job.request.labels, avoid: avoid, prefer: prefer,
                     gpus: job.request.gpus ?? 0, requirements: job.request.requirements, hosts: job.request.hostSet)
    }

    /// The GPU part of an attempt's spec: how many, and the devices the inventory offers (nil: the agent's detection).
    func gpuGrant(_ request: JobRequest, host: HostSpec) -> GPUGrant? {
        guard let n = request.gpus, n > 0 else { return nil }
        return GPUGrant(count: n, devices: host.gpus)
    }

    /// Queued jobs with GPU or fact requirements that no host of the inventory can take get a
    /// note (their reason, and one audit line when it changes): they wait, and say why.
    func noteUnplaceable(_ jobs: [JobRecord], placed: Set<Int>) throws {
        let demanding = jobs.filter { !placed.contains($0.id) && (($0.request.gpus ?? 0) > 0 || !($0.request.require ?? [:]).isEmpty) }
        guard !demanding.isEmpty else { return }
        let known = knownFacts()
        let all = inventory.hosts.map { SchedulerHost(name: $0.name, slots: slots(of: $0), used: 0, labels: placementLabels($0), gpus: gpuCount($0)) }
        var changes: [(JobRecord, String?)] = []
        for job in demanding {
            let sj = schedulerJob(job, avoid: [])
            guard !all.contains(where: sj.fits) else {
                if job.reason?.hasPrefix("waits: ") == true { changes.append((job, nil)) }
                continue
            }
            let why = all.map { h -> String in
                let problem = sj.misfit(h) ?? "fits"
                return "\(h.name): \(known[h.name] == nil && problem.hasPrefix("has no fact") ? "facts not collected yet (not connected)" : problem)"
            }
            let note = "waits: no host fits (\(why.joined(separator: "; ")))"
            if note != job.reason { changes.append((job, note)) }
        }
        guard !changes.isEmpty else { return }
        try journal.db.transaction {
            for (job, note) in changes {
                try journal.setReason(job.id, note)
                if let note { try journal.audit("job", job: job.id, state: "queued", "job \(job.label) \(note)") }
            }
        }
    }
}
