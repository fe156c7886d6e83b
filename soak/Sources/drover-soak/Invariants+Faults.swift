import DroverCoordinator
import Foundation

/// The checks of the faults themselves (docs/reliability.md, "Faults"): each had its effect,
/// and each kind ran often enough for the run's length.
extension Invariants {
    /// Every fault had its verified effect; a partition past the lease also made its agent
    /// orphan the job pinned there (an `orphaned` attempt, or a `lease_expired` event naming at
    /// least one attempt, on that host after the partition began).
    mutating func checkFaultEffects(_ effects: inout [FaultEffect], longPartitions: [(host: String, from: Double, to: Double, job: Int?)],
                                    attempts: [Int: [AttemptRecord]], events: [AuditEvent], started: Double) {
        var lp = longPartitions
        for i in effects.indices where effects[i].kind == .longPartition && effects[i].ok {
            guard !lp.isEmpty else { break }
            let p = lp.removeFirst()
            let orphaned = p.job.map { j in (attempts[j] ?? []).contains { $0.host == p.host && $0.agentState == "orphaned" } } ?? false
            let expiries = events.filter { $0.kind == "lease_expired" && $0.host == p.host && $0.time >= p.from && !$0.message.contains("(0 attempt") }
            if orphaned || !expiries.isEmpty {
                effects[i].detail += "; the agent orphaned " + (orphaned ? "job \(p.job!) there" : "attempts") + (expiries.isEmpty ? "" : " (\(expiries[0].message))")
            } else {
                effects[i].ok = false
                effects[i].detail += "; but no attempt was orphaned there (job \(p.job.map(String.init) ?? "none") pinned)"
            }
        }
        let problems = effects.filter { !$0.ok }.map { "\($0.name) had no effect: \($0.detail)" }
        add("every fault had its effect", problems, ok: "\(effects.count) faults, each one's effect verified (the fault log has the details)")
    }

    /// Each kind of fault the testbed offers ran, with its effect, at least `Fault.minimum` times.
    mutating func checkFaultCounts(_ effects: [FaultEffect], minutes: Double, setting: Fault.Setting) {
        var problems: [String] = []
        var shown: [String] = []
        for (kind, _) in Fault.weights(setting).sorted(by: { $0.0.rawValue < $1.0.rawValue }) {
            let n = effects.filter { $0.kind == kind && $0.ok }.count
            let least = Fault.minimum(kind, minutes: minutes, setting)
            shown.append("\(n) \(kind.rawValue) (≥ \(least))")
            if n < least { problems.append("\(n) \(kind.rawValue) with effect, fewer than the \(least) a \(Soak.number(minutes))-minute run must have") }
        }
        add("every fault kind, often enough", problems, ok: shown.joined(separator: ", "))
    }
}
