import DroverCoordinator
import DroverCore
import DroverInventory
import DroverProtocol

/// Which hosts can take a job given their facts and GPUs (as the journal last recorded them),
/// and why the others cannot: for `--dry-run` and the warning about a batch spread over hosts
/// whose versions differ.
struct HostFit {
    let inventory: Inventory
    let facts: [String: HostFactsRecord]

    /// Reads the recorded facts from the state directory's journal, if there is one (read only).
    init(inventory: Inventory, state: StateLocation) {
        self.inventory = inventory
        var facts: [String: HostFactsRecord] = [:]
        if state.exists, LocalFile.exists(state.journalPath), let db = try? SQLiteDatabase(path: state.journalPath) {
            facts = (try? Journal.readHostFacts(db)) ?? [:]
        }
        self.facts = facts
    }

    /// The hosts as the scheduler sees them: labels over facts, GPUs configured or detected.
    func hosts(slots: [String: Int] = [:]) -> [SchedulerHost] {
        inventory.hosts.map { h in
            let report = facts[h.name]?.report
            return SchedulerHost(name: h.name, slots: h.slots ?? slots[h.name] ?? Int.max, used: 0,
                                 labels: (report?.all ?? [:]).merging(h.labels) { _, inventory in inventory },
                                 gpus: h.gpus?.count ?? report?.gpus.count ?? 0)
        }
    }

    /// One line per host: `h1  fits` or `h3  no: python is 3.9.2, needs >=3.11`.
    func lines(for request: JobRequest) -> [String] {
        let job = SchedulerJob(id: 0, slots: request.slots, host: request.host, labels: request.labels, gpus: request.gpus ?? 0, requirements: request.requirements, hosts: request.hostSet)
        let width = inventory.hosts.map(\.name.count).max() ?? 0
        return hosts().map { h in
            let pad = String(repeating: " ", count: max(0, width - h.name.count))
            guard let why = job.misfit(h) else { return "  \(h.name)\(pad)  fits" }
            let unknown = facts[h.name] == nil && why.hasPrefix("has no fact")
            return "  \(h.name)\(pad)  no: \(unknown ? "its facts are not known yet (no coordinator has connected to it; `drover hosts --facts` collects them)" : why)"
        }
    }

    /// A one-line warning when the hosts the jobs may run on report different versions of a fact the jobs require.
    func spreadWarning(_ requests: [JobRequest], batch: String) -> String? {
        let all = hosts()
        var notes: [String] = []
        for fact in Set(requests.flatMap { ($0.require ?? [:]).keys }).sorted() {
            var byValue: [String: [String]] = [:]
            for r in requests where r.require?[fact] != nil {
                let job = SchedulerJob(id: 0, slots: 1, host: r.host, labels: r.labels, gpus: r.gpus ?? 0, requirements: r.requirements, hosts: r.hostSet)
                for h in all where job.fits(SchedulerHost(name: h.name, slots: Int.max, used: 0, labels: h.labels, gpus: h.gpus)) {
                    guard let v = h.labels[fact] else { continue }
                    let key = HostFacts.version(in: v).map { $0.map(String.init).joined(separator: ".") } ?? v
                    if !(byValue[key]?.contains(h.name) ?? false) { byValue[key, default: []].append(h.name) }
                }
            }
            if byValue.count > 1 {
                notes.append("\(fact) " + byValue.sorted { $0.key < $1.key }.map { "\($0.key) on \($0.value.joined(separator: ","))" }.joined(separator: ", "))
            }
        }
        guard !notes.isEmpty else { return nil }
        return "batch \(batch) may run on hosts with different versions of what its jobs require: \(notes.joined(separator: "; ")) (pin one with `require`, e.g. \"=VERSION\")"
    }
}
