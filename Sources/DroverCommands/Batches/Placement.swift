import DroverCoordinator
import DroverInventory

/// Whether a job's placement constraints can ever be met by the inventory.
enum Placement {
    /// The problem with `--host`/`--on`/`--slots`, or nil when some host fits.
    static func problem(_ r: JobRequest, inventory: Inventory) -> String? {
        if let host = r.host, inventory.host(named: host) == nil {
            return "no host \(host) in \(inventory.source); hosts: \(inventory.hosts.map(\.name).joined(separator: ", "))"
        }
        let probe = SchedulerJob(id: 0, slots: 1, host: r.host, labels: r.labels, hosts: r.hostSet)
        let candidates = inventory.hosts.filter { probe.fits(SchedulerHost(name: $0.name, slots: Int.max, used: 0, labels: $0.labels)) }
        if candidates.isEmpty {
            let known = inventory.hosts.map { h in "\(h.name)" + (h.labels.isEmpty ? "" : " (" + h.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ")") }
            let wanted = r.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
            return "no host in \(inventory.source) matches \(wanted.isEmpty ? "" : "labels \(wanted)")\(r.host.map { " host \($0)" } ?? ""); hosts: \(known.joined(separator: "; "))"
        }
        if let largest = candidates.compactMap(\.slots).max(), candidates.allSatisfy({ $0.slots != nil }), r.slots > largest {
            return "\(r.slots) slots: the largest matching host has \(largest) slot(s) (hosts.json `slots`)"
        }
        if let n = r.gpus, n > 0, let most = candidates.compactMap({ $0.gpus?.count }).max(), candidates.allSatisfy({ $0.gpus != nil }), n > most {
            let counts = candidates.map { "\($0.name): \($0.gpus?.count ?? 0)" }.joined(separator: ", ")
            return "--gpus \(n): no matching host has that many GPUs (\(counts); hosts.json `gpus`)"
        }
        return nil
    }
}
