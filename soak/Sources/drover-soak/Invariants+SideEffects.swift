import DroverCoordinator
import Foundation

/// The checks of what each job did: the result the journal accepted, and the side effects
/// (evidence lines) on the hosts (docs/reliability.md, "Side effects").
extension Invariants {
    /// A time window in which a replaced attempt could still run to its end unkilled: its host
    /// cut off (nil: every host, e.g. the coordinator down), from `from` to `to` + the slack.
    struct Window {
        var host: String?
        var from: Double
        var to: Double
        var what: String
    }

    /// How long after a window the coordinator may still need to kill a replaced attempt:
    /// the dead connection's keepalives (about 15 s), a reconnect and the reconciliation.
    static let killSlack = 30.0

    /// Per job, exactly one attempt is accepted as its success (not replaced, exited 0), and for
    /// a succeeded job it is its current attempt, whose evidence line is on the host the journal
    /// names; no attempt left two evidence lines.
    mutating func checkOneAcceptedSuccess(_ jobs: [JobRecord], attempts: [Int: [AttemptRecord]]) {
        var problems: [String] = []
        var lines: [String: [String]] = [:]
        for (host, r) in records { for e in r.evidence { lines["\(e.job)/\(e.attempt)", default: []].append(host) } }
        for job in jobs where kinds[job.id] != nil {
            let list = attempts[job.id] ?? []
            let accepted = list.filter { !$0.stale && $0.agentState == "exited" && $0.exitCode == 0 }
            if accepted.count > 1 { problems.append("job \(job.id): attempts \(accepted.map { String($0.attempt) }.joined(separator: ",")) all accepted as succeeded") }
            if job.state == .succeeded {
                if accepted.map(\.attempt) != [job.attempt] { problems.append("job \(job.id) succeeded with attempt \(job.attempt), accepted: \(accepted.map(\.attempt))") }
                let key = "\(job.id)/\(job.attempt)"
                if let hosts = lines[key], let a = list.first(where: { $0.attempt == job.attempt }) {
                    if hosts != [a.host] { problems.append("job \(job.id) attempt \(job.attempt) ran on \(a.host) but its evidence is on \(hosts.joined(separator: ", "))") }
                } else {
                    problems.append("job \(job.id) succeeded but attempt \(job.attempt) left no evidence")
                }
            }
        }
        for (key, hosts) in lines where hosts.count > 1 { problems.append("attempt \(key) completed \(hosts.count) times") }
        let succeeded = jobs.filter { kinds[$0.id] != nil && $0.state == .succeeded }.count
        add("one accepted success per job", problems, ok: "\(succeeded) successes, each one attempt accepted, with its evidence on its host")
    }

    /// Side effects, counted from the evidence files: each job's side effect ran once, except
    /// where a replaced attempt (`stale`, or `lost`) also ran to its end, which the stale policy
    /// allows only while the coordinator could not reach it yet: its end lies in a window where
    /// its host was cut off, its disk full, or the coordinator away (plus `killSlack`). Such
    /// duplicates are reported apart; any other is a failure, as is a side effect of an attempt
    /// that is neither accepted nor replaced (of a job that succeeded).
    mutating func checkSideEffects(_ jobs: [JobRecord], attempts: [Int: [AttemptRecord]], windows: [Window], stalePolicy: String) {
        var problems: [String] = []
        var evidence: [Int: [(attempt: Int, host: String, time: Double)]] = [:]
        for (host, r) in records { for e in r.evidence { evidence[e.job, default: []].append((e.attempt, host, e.time)) } }
        var once = 0, twice = 0, byWhat: [String: Int] = [:]
        for job in jobs where kinds[job.id] != nil {
            let marks = evidence[job.id] ?? []
            if marks.count == 1 { once += 1 }
            if marks.count > 1 { twice += 1 }
            let list = attempts[job.id] ?? []
            for m in marks where !(job.state == .succeeded && m.attempt == job.attempt) {
                guard let a = list.first(where: { $0.attempt == m.attempt }) else {
                    problems.append("job \(job.id): evidence of attempt \(m.attempt), unknown to the journal")
                    continue
                }
                let replaced = a.stale || a.state == "lost" || a.agentState == "lost"
                if !replaced && job.state == .succeeded {
                    problems.append("job \(job.id) attempt \(m.attempt) completed on \(m.host) but is neither accepted nor replaced")
                    continue
                }
                guard job.state == .succeeded else { continue }  // a job that did not succeed: its side effects are not promised once
                if let w = windows.first(where: { ($0.host == nil || $0.host == m.host) && m.time >= $0.from && m.time <= $0.to + Self.killSlack }) {
                    byWhat[w.what, default: 0] += 1
                } else {
                    problems.append("job \(job.id): replaced attempt \(m.attempt) ran to its end on \(m.host) at \(Self.clock(m.time)), outside any cut-off (+\(Int(Self.killSlack)) s): the stale policy \(stalePolicy) should have killed it")
                }
            }
        }
        let why = byWhat.keys.sorted().map { "\(byWhat[$0]!) during \($0)" }.joined(separator: ", ")
        add("side effects: once, or replaced and unreachable", problems,
            ok: "\(once) jobs' side effect ran once; \(twice) ran more than once, each extra one a replaced attempt that ran to its end before the coordinator could kill it (stale policy \(stalePolicy))" + (why.isEmpty ? "" : ": " + why))
    }

    static func clock(_ t: Double) -> String {
        var s = time_t(t)
        var tm = tm()
        gmtime_r(&s, &tm)
        return String(format: "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec)
    }
}
