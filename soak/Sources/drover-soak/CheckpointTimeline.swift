import DroverCoordinator
import Foundation

/// The snapshots of the run as the coordinator's audit trail tells them: when each was taken
/// on its host (the agent's event time), when the coordinator stored it after pulling it over
/// SFTP, and which snapshot each restarted attempt was given.
struct CheckpointTimeline {
    /// One snapshot: attempt and index within it.
    struct Snapshot: Hashable, Comparable {
        var attempt: Int
        var index: Int
        static func < (a: Snapshot, b: Snapshot) -> Bool { (a.attempt, a.index) < (b.attempt, b.index) }
    }

    /// Per job, per snapshot: when it was taken.
    private(set) var taken: [Int: [Snapshot: Double]] = [:]
    /// Per job, per snapshot: when the coordinator stored it (newer than the one it had).
    private(set) var stored: [Int: [Snapshot: Double]] = [:]
    /// Per job, per attempt: the snapshot it started from, and when that was decided.
    private(set) var restored: [Int: [Int: (snapshot: Snapshot, at: Double)]] = [:]
    /// Seconds from taking to storing, for every snapshot stored (the pull's latency, with the
    /// agent's event and the coordinator's turn to apply it), with the time it was stored.
    private(set) var pullLatencies: [(storedAt: Double, seconds: Double)] = []

    init(_ events: [AuditEvent]) {
        for e in events where e.kind == "checkpoint" {
            guard let job = e.job, let attempt = e.attempt else { continue }
            if e.state == "restored" {
                // "attempt N of job J on H starts from snapshot I of attempt A (…)"
                guard let r = e.message.range(of: " starts from snapshot ", options: .backwards) else { continue }
                let words = e.message[r.upperBound...].split(separator: " ")
                if words.count > 3, let index = Int(words[0]), let of = Int(words[3]) {
                    restored[job, default: [:]][attempt] = (Snapshot(attempt: of, index: index), e.time)
                }
            } else {
                // "snapshot I of attempt A of job J taken on H (…)", "snapshot I of attempt A stored (…)"
                let words = e.message.split(separator: " ", maxSplits: 6)
                guard words.count > 5, words[0] == "snapshot", let index = Int(words[1]) else { continue }
                let s = Snapshot(attempt: attempt, index: index)
                if words[5] == "stored" { stored[job, default: [:]][s] = e.time }
                if e.message.contains(" taken on ") { taken[job, default: [:]][s] = e.time }
            }
        }
        for (job, list) in stored {
            for (s, at) in list { if let t = taken[job]?[s] { pullLatencies.append((at, at - t)) } }
        }
    }

    /// The longest pull of a snapshot stored from `from` to `to` (any job, any host), 0 if none.
    func longestPull(from: Double, to: Double) -> Double {
        pullLatencies.filter { $0.storedAt >= from && $0.storedAt <= to }.map(\.seconds).max() ?? 0
    }

    /// The newest snapshot of `job` the coordinator had stored by `time`.
    func newestStored(_ job: Int, by time: Double) -> Snapshot? {
        (stored[job] ?? [:]).filter { $0.value <= time }.keys.max()
    }
}
