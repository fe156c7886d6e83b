import DroverCore
import Foundation

extension Coordinator {
    /// Releases waiting batch jobs whose dependencies are satisfied (to the queue, or to
    /// `approval` for gates) and skips those whose dependencies can no longer be; repeats
    /// until nothing changes, so a skip travels down the whole chain in one pass.
    func releaseWaiting() throws {
        var changed = true
        while changed {
            changed = false
            let waiting = try journal.db.query("SELECT \(Journal.jobColumns) FROM jobs WHERE state='waiting' AND superseded=0 ORDER BY id").compactMap(journal.job(from:))
            guard !waiting.isEmpty else { return }
            var states: [String: [String: JobState]] = [:]
            try journal.db.transaction {
                for job in waiting {
                    guard let batch = job.batch else { continue }
                    if states[batch] == nil {
                        var m: [String: JobState] = [:]
                        for r in try journal.db.query("SELECT batch_job, state FROM jobs WHERE batch=? AND superseded=0", .text(batch)) {
                            if let j = r.string("batch_job"), let s = r.string("state").flatMap(JobState.init(rawValue:)) { m[j] = s }
                        }
                        states[batch] = m
                    }
                    let known = states[batch]!
                    var ready = true
                    var blocker: (Dependency, JobState)?
                    for d in job.request.after ?? [] {
                        // A dependency missing from the batch (left out by --limit) never completes.
                        guard let s = known[d.job] else { ready = false; continue }
                        switch d.satisfied(by: s) {
                        case true?: continue
                        case false?: blocker = blocker ?? (d, s)
                        case nil: ready = false
                        }
                    }
                    if let (d, s) = blocker {
                        try finish(job, .skipped, reason: "\(d.job) \(s.rawValue) (after \(d.job):\(d.condition.rawValue))")
                        states[batch]?[job.batchJob ?? ""] = .skipped
                        changed = true
                    } else if ready {
                        let next: JobState = job.request.approval == true ? .approval : .queued
                        try journal.db.run("UPDATE jobs SET state=?, started_at=? WHERE id=? AND state='waiting'",
                                           .text(next.rawValue), next == .approval ? .double(wallNow) : .null, .int(Int64(job.id)))
                        try journal.audit("job", job: job.id, state: next.rawValue,
                                          "job \(job.label) \(next == .approval ? "awaits approval (drover approve \(job.label))" : "queued: its dependencies are done")")
                        states[batch]?[job.batchJob ?? ""] = next
                        dirty = true
                    }
                }
            }
        }
    }

    /// `--fail-fast`: the first job of the batch that fails for good cancels every other unfinished one.
    func failFast(_ batch: String, failed: JobRecord) throws {
        let reason = "fail-fast: \(failed.label) failed"
        for other in try journal.batchJobs(batch) where !other.state.isFinal && other.id != failed.id {
            switch other.state {
            case .waiting, .approval, .queued:
                try finish(other, .cancelled, reason: reason)
            default:
                if !other.cancelRequested {
                    try journal.db.run("UPDATE jobs SET cancel_requested=1, reason=? WHERE id=?", .text(reason), .int(Int64(other.id)))
                    try journal.audit("cancel_requested", job: other.id, reason)
                    requestsPending = true
                }
            }
        }
    }

    /// Approval gates that waited longer than their timeout fail.
    /// Fails approval gates whose timeout passed; returns when the next one times out.
    func checkApprovals() throws -> Double? {
        let gates = try journal.jobs(in: [.approval])
        var next: Double?
        for job in gates {
            guard let timeout = job.request.timeout, let since = job.startedAt else { continue }
            guard wallNow - since >= timeout else {
                next = min(next ?? since + timeout, since + timeout)
                continue
            }
            try journal.db.transaction {
                try finish(job, .failed, reason: "not approved within \(Durations.clock(timeout)) (timeout)")
            }
        }
        return next ?? wallNow + 3600
    }

    /// Batches whose every job is over: record the end and write their report.
    func checkFinishedBatches() throws {
        let rows = try journal.db.query("""
            SELECT b.name AS name FROM batches b WHERE b.finished_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch=b.name AND j.superseded=0 AND j.state IN \(JobState.openSQL))
            """)
        for name in rows.compactMap({ $0.string("name") }) {
            guard let batch = try journal.batch(named: name) else { continue }
            let jobs = try journal.batchJobs(name)
            try journal.db.transaction {
                try journal.db.run("UPDATE batches SET finished_at=? WHERE name=?", .double(wallNow), .text(name))
                let counts = Dictionary(grouping: jobs, by: \.state).map { "\($0.value.count) \($0.key.rawValue)" }.sorted().joined(separator: ", ")
                try journal.audit("batch", "batch \(name) finished: \(counts)")
            }
            do {
                let report = try BatchReport.build(journal, batch: batch)
                try report.write(to: batch.folder + "/report.json")
            } catch {
                log("batch \(name): cannot write its report: \(error)")
                try? journal.audit("batch", "batch \(name): report not written: \(error)")
            }
        }
    }

    /// The earliest pending retry back-off end, if any.
    func nextWake() throws -> Double? {
        try journal.db.query("SELECT MIN(not_before) AS t FROM jobs WHERE state='queued' AND not_before > ?", .double(wallNow)).first?.double("t")
    }
}
