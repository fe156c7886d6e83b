import DroverCoordinator
import Foundation

/// The check of the black-hole faults (docs/reliability.md, "Black-hole hosts").
extension Invariants {
    /// Per black-hole fault (the tool away on `host` from `from` to `to`):
    /// - it had an effect: at least one attempt there exited 127 (`not found`) in the window
    ///   (otherwise the fault is reported as without effect and not counted);
    /// - when `threshold` jobs of the longest streak there of such failures of different jobs
    ///   (no success ending in between) succeeded on another host before a success there
    ///   ended the streak — the breaker's proof — the host was quarantined (an audit event) by 10 s after the later of the window's end
    ///   and that proof; otherwise no quarantine is required;
    /// - no job ended `failed` with exit 127;
    /// - the host ran a job successfully that started after the tool was back, and no
    ///   automatic quarantine of it is left at the end.
    /// Returns, per fault, whether it had an effect.
    @discardableResult
    mutating func checkBlackHoles(_ holes: [(host: String, from: Double, to: Double)], jobs: [JobRecord], attempts: [Int: [AttemptRecord]],
                                  events: [AuditEvent], quarantines: [QuarantineRecord], threshold: Int, started: Double) -> [Bool] {
        var problems: [String] = []
        var shown: [String] = []
        var effects: [Bool] = []
        let all = attempts.values.flatMap { $0 }.filter { kinds[$0.job] != nil }
        for hole in holes {
            let name = "\(hole.host) at T+\(Int(hole.from - started)) s"
            let there = all.filter { $0.host == hole.host }
            let ended = there.filter { ($0.endedAt ?? 0) >= hole.from && ($0.endedAt ?? 0) <= hole.to + 2 }.sorted { ($0.endedAt ?? 0) < ($1.endedAt ?? 0) }
            let toolFailures = ended.filter { $0.agentState == "exited" && $0.exitCode == 127 }
            effects.append(!toolFailures.isEmpty)
            guard !toolFailures.isEmpty else {
                shown.append("\(name): no job ran the tool there meanwhile")
                continue
            }
            var streak: Set<Int> = [], longestJobs: Set<Int> = []
            var streakLast = 0.0, longestLast = 0.0
            for a in ended {
                if a.agentState == "exited" && a.exitCode == 0 { streak = [] }
                else if a.agentState == "exited" && a.exitCode == 127 {
                    streak.insert(a.job)
                    streakLast = a.endedAt ?? 0
                    if streak.count > longestJobs.count { longestJobs = streak; longestLast = streakLast }
                }
            }
            let longest = longestJobs.count
            // The breaker judges a host's current streak: a success there ends it (a job that
            // does not need the missing tool), and proof that comes after no longer counts.
            let streakEnd = there.filter { ($0.endedAt ?? 0) > longestLast && $0.agentState == "exited" && $0.exitCode == 0 }.compactMap(\.endedAt).min() ?? .infinity
            // The breaker's proof that the host is at fault (docs/failures.md, "Black-hole
            // hosts"): `threshold` jobs of the streak succeeded on another host (their retries)
            // while the streak was still the host's current one. Only then is a quarantine
            // required, by 10 s after the later of the tool's return and that proof.
            let provenAt = longestJobs.compactMap { j in
                (attempts[j] ?? []).filter { $0.host != hole.host && $0.agentState == "exited" && $0.exitCode == 0 }.compactMap(\.endedAt).min()
            }.filter { $0 < streakEnd }.sorted()
            let deadline = provenAt.count >= threshold ? max(hole.to, provenAt[threshold - 1]) + 10 : hole.to + 10
            let quarantinedAt = events.first { $0.kind == "quarantine" && $0.host == hole.host && $0.state == "quarantined" && $0.time >= hole.from && $0.time <= deadline }?.time
            if provenAt.count >= threshold && quarantinedAt == nil {
                problems.append("\(name): \(longest) different jobs failed there in a row with exit 127 and \(provenAt.count) of them succeeded elsewhere, but it was not quarantined")
            }
            let retried = Set(toolFailures.map(\.job)).filter { j in (attempts[j] ?? []).contains { a in a.host != hole.host && toolFailures.contains { $0.job == j && $0.attempt < a.attempt } } }
            let back = there.filter { ($0.startedAt ?? 0) > hole.to && $0.agentState == "exited" && $0.exitCode == 0 }.map(\.startedAt!).min()
            if back == nil { problems.append("\(name): no job succeeded there after its tool came back") }
            var text = "\(name): \(toolFailures.count) exit 127 (\(Set(toolFailures.map(\.job)).count) jobs, \(retried.count) retried elsewhere), longest streak \(longest)"
            text += quarantinedAt.map { ", quarantined at T+\(Int($0 - started)) s" } ?? ", not quarantined (\(provenAt.count) of the streak's jobs succeeded elsewhere before a success there ended it, below \(threshold))"
            text += back.map { ", a job succeeded there \(Self.seconds($0 - hole.to)) s after the tool was back" } ?? ""
            shown.append(text)
        }
        for job in jobs where kinds[job.id] != nil && job.state == .failed && job.exitCode == 127 {
            problems.append("job \(job.id) (\(kinds[job.id]!.rawValue)) failed for good with exit 127")
        }
        for q in quarantines where q.state != .closed && q.state != .manual {
            problems.append("\(q.host) is still quarantined at the end (\(q.state.rawValue): \(q.reason ?? ""))")
        }
        add("black-hole hosts", problems, ok: holes.isEmpty ? "no black-hole fault in this run" : shown.joined(separator: "; "))
        return effects
    }
}
