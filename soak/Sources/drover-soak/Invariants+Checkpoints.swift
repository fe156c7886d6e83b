import DroverCoordinator
import Foundation

/// The check of the `checkpointed` jobs (docs/reliability.md, "Checkpoint restarts").
extension Invariants {
    /// Seconds of progress a restart may lose on top of the checkpoint interval: taking the
    /// snapshot, the agent's event, the coordinator's pull over SFTP, one count. When pulls
    /// took longer around the restart (a loaded machine), the longest of them plus
    /// `countSlack` counts instead: the snapshot after the restored one was under way that long.
    static let pullSlack = 4.0
    /// A count's 0.5 s and the agent's timer: what a snapshot may lag behind the progress it saw.
    static let countSlack = 1.0
    /// Pulls stored this long before the restart's lost progress count towards its slack.
    static let pullWindow = 60.0
    /// The coordinator's `--dead-after` (the soak uses the default): how long a job cut off
    /// by a partition runs on, unheard, before it is re-run elsewhere.
    static let detection = 10.0
    /// After the coordinator is back from a kill or a stop, the time it takes to reconnect and pull.
    static let reconnect = 5.0

    /// Each `checkpointed` job that succeeded counted to its target in its accepted attempt,
    /// and each restart (an attempt starting after an earlier one of the same job had started)
    /// lost at most `every` + `pullSlack` s of progress after a power-off of the earlier
    /// attempt's host (the job stopped there), and at most `every` + `detection` + `pullSlack`
    /// s after anything else (a partitioned job runs on until it is replaced); either plus the
    /// time the coordinator was killed or stopped (+ `reconnect`) while that progress was made.
    /// Progress lost = the time the earlier attempt reached its highest count before the
    /// restart, minus the time it reached the count the restart starts from. A restart given a
    /// snapshot must be given the newest one the coordinator had stored when it was dispatched.
    mutating func checkCheckpointRestarts(_ jobs: [JobRecord], attempts: [Int: [AttemptRecord]], events: [AuditEvent],
                                          powerOffs: [(host: String, at: Double)], outages: [(from: Double, to: Double)]) {
        var problems: [String] = []
        let timeline = CheckpointTimeline(events)
        var lines: [Int: [AgentRecords.Progress]] = [:]
        for r in records.values { for p in r.progress { lines[p.job, default: []].append(p) } }
        var count = 0, restarts = 0, afterPowerOff = 0, restoredAfterPowerOff = 0
        var worst = 0.0, worstAfterPowerOff = 0.0, widest = 0.0
        let every = JobKind.checkpointEvery
        for job in jobs where kinds[job.id] == .checkpointed {
            count += 1
            let progress = lines[job.id] ?? []
            let list = attempts[job.id] ?? []
            if job.state == .succeeded, let target = Self.target(job.request.shell ?? "") {
                let reached = progress.filter { $0.attempt == job.attempt }.map(\.count).max() ?? -1
                if reached != target { problems.append("job \(job.id) succeeded with attempt \(job.attempt), which counted to \(reached), not \(target)") }
            }
            for (attempt, r) in timeline.restored[job.id] ?? [:] {
                if let newest = timeline.newestStored(job.id, by: r.at), newest != r.snapshot {
                    problems.append("job \(job.id) attempt \(attempt) started from snapshot \(r.snapshot.index) of attempt \(r.snapshot.attempt), but snapshot \(newest.index) of attempt \(newest.attempt) was stored")
                }
            }
            let starts = progress.filter(\.start).sorted { $0.time < $1.time }
            for (i, start) in starts.enumerated() where i > 0 {
                restarts += 1
                let prev = starts[i - 1]
                let before = progress.filter { $0.attempt == prev.attempt && $0.time <= start.time }
                guard let top = before.max(by: { $0.count < $1.count || ($0.count == $1.count && $0.time > $1.time) }) else { continue }
                let everReached = progress.filter { $0.time <= start.time }.map(\.count).max() ?? 0
                if start.count > everReached {
                    problems.append("job \(job.id) attempt \(start.attempt) starts from \(start.count), more than any attempt reached (\(everReached))")
                }
                let from = start.count
                var lost = 0.0
                var reachedFromAt = top.time
                if from < top.count {
                    if from >= prev.count, let at = before.filter({ $0.count == from }).map(\.time).min() {
                        lost = top.time - at
                        reachedFromAt = at
                    } else {
                        lost = top.time - prev.time + Double(prev.count - from) * JobKind.tick
                        reachedFromAt = prev.time
                    }
                }
                let host = list.first { $0.attempt == prev.attempt }?.host
                let powerOff = powerOffs.first { $0.host == host && $0.at >= top.time - 3 && $0.at <= start.time }
                let away = outages.reduce(0.0) { $0 + max(0, min($1.to + Self.reconnect, top.time) - max($1.from, reachedFromAt)) }
                let slack = max(Self.pullSlack, Self.countSlack + timeline.longestPull(from: reachedFromAt - Self.pullWindow, to: start.time))
                widest = max(widest, slack)
                let allowed = every + slack + away + (powerOff == nil ? Self.detection : 0)
                let what = "job \(job.id) attempt \(start.attempt) (after attempt \(prev.attempt) on \(host ?? "?")\(powerOff == nil ? "" : ", powered off"))"
                if lost > allowed {
                    problems.append("\(what) starts from \(from), attempt \(prev.attempt) had reached \(top.count): lost \(Self.seconds(lost)) s of progress, allowed \(Self.seconds(allowed)) s")
                }
                worst = max(worst, lost)
                if powerOff != nil {
                    afterPowerOff += 1
                    worstAfterPowerOff = max(worstAfterPowerOff, lost)
                    if start.restored { restoredAfterPowerOff += 1 }
                }
            }
        }
        var detail = "\(count) job(s), \(restarts) restart(s), \(afterPowerOff) after a power-off of their host (\(restoredAfterPowerOff) from a snapshot)"
        if afterPowerOff > 0 {
            detail += "; most progress lost: \(Self.seconds(worstAfterPowerOff)) s after a power-off (allowed \(Self.seconds(every + Self.pullSlack)) s, or more when pulls were slower then), \(Self.seconds(worst)) s in all"
        } else {
            detail += "; no power-off hit a checkpointed job (nothing to check there)"
        }
        let pulls = timeline.pullLatencies.map(\.seconds).sorted()
        if !pulls.isEmpty {
            let figures = "taken → stored p50 \(Self.seconds(pulls[pulls.count / 2])) s, max \(Self.seconds(pulls[pulls.count - 1])) s"
            detail += "; \(pulls.count) snapshot(s) pulled, \(figures)"
            if widest > Self.pullSlack { detail += " (slack widened to \(Self.seconds(widest)) s by slow pulls)" }
            if !problems.isEmpty { problems.append("snapshots \(figures)") }
        }
        add("checkpointed jobs resume", problems, ok: detail)
    }

    /// The count a `checkpointed` job's shell line runs to (`-lt N`).
    static func target(_ shell: String) -> Int? {
        guard let r = shell.range(of: "-lt ") else { return nil }
        return Int(shell[r.upperBound...].prefix { $0.isNumber })
    }

    static func seconds(_ d: Double) -> String { String(format: "%.1f", d) }
}
