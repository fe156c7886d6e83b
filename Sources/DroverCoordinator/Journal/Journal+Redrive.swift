import DroverCore
import Foundation

/// A failed job as a dead letter: why it failed and the head of its last attempt's stderr.
public struct DeadLetter: Sendable, Encodable {
    public var job: JobRecord
    /// The head of the last attempt's stderr, when the coordinator kept it (inline output).
    public var stderrHead: String?
}

/// What `redrive` did with one job.
public struct RedriveOutcome: Sendable, Encodable, Equatable {
    public var job: Int
    public var label: String
    /// nil: re-driven; else why not (e.g. `running`, `succeeded`).
    public var refused: String?
    /// Batch jobs skipped because of it that wait again.
    public var released: [String]
}

/// Dead letters and re-drive (docs/failures.md#dead-letters-and-re-drive): failed jobs are
/// listed with their reason, and `drover retry` puts them back with a new attempt, their
/// history kept.
extension Journal {
    /// Failed jobs (not superseded), oldest first, each with the head of its last attempt's stderr.
    public func deadLetters() throws -> [DeadLetter] {
        let jobs = try db.query("SELECT \(Self.jobColumns) FROM jobs WHERE state='failed' AND superseded=0 ORDER BY id").compactMap(job(from:))
        return try jobs.map { j in
            DeadLetter(job: j, stderrHead: j.attempt > 0 ? try stderrHead(job: j.id, attempt: j.attempt) : nil)
        }
    }

    /// The jobs `drover retry BATCH` takes: its failed ones, and with `cancelled` also the
    /// ones fail-fast cancelled.
    public func redrivable(batch: String, cancelled: Bool) throws -> [JobRecord] {
        try batchJobs(batch).filter { j in
            j.state == .failed || (cancelled && j.state == .cancelled && (j.reason ?? "").hasPrefix("fail-fast"))
        }
    }

    /// Re-drives failed (or cancelled) jobs in one transaction: each goes back to the queue (a
    /// batch job to `waiting`, so its dependencies are checked again) for a new attempt, its
    /// attempts kept; with `resetBudget` its retry and host-loss budgets start again, else it
    /// gets this one attempt. Batch jobs skipped because of it wait again, and their batch is
    /// open again. Every step is audited (`retry`).
    public func redrive(_ ids: [Int], resetBudget: Bool, by who: String, at time: Double = Date().timeIntervalSince1970) throws -> [RedriveOutcome] {
        try db.transaction {
            var out: [RedriveOutcome] = []
            var reopened: Set<String> = []
            for id in ids {
                guard let j = try job(id) else { continue }
                guard j.state == .failed || j.state == .cancelled else {
                    let why = j.state == .skipped ? "skipped (\(j.reason ?? "a dependency ended the wrong way")): retry the job it waits for" : j.state.rawValue
                    out.append(RedriveOutcome(job: id, label: j.label, refused: why, released: []))
                    continue
                }
                let next: JobState = j.batch != nil ? .waiting : .queued
                try db.run("""
                    UPDATE jobs SET state=?, reason=NULL, exit_code=NULL, signal=NULL, ended_at=NULL, not_before=NULL, cancel_requested=0,
                      host=NULL\(resetBudget ? ", failures=0, losses=0" : "")
                    WHERE id=? AND state IN ('failed','cancelled')
                    """, .text(next.rawValue), .int(Int64(id)))
                let budget = resetBudget ? "its retry budgets reset" : "one more attempt (budgets kept; --reset-budget restores them)"
                try audit("retry", job: id, attempt: j.attempt, state: next.rawValue,
                          "job \(j.label) re-driven by \(who) after it \(j.state.rawValue) (\(j.reason ?? "no reason recorded")): attempt \(j.attempt + 1) next, \(budget)", time: time)
                var released: [String] = []
                if let batch = j.batch, let batchJob = j.batchJob {
                    released = try releaseSkipped(batch: batch, below: batchJob, by: j.label, at: time)
                    reopened.insert(batch)
                }
                out.append(RedriveOutcome(job: id, label: j.label, refused: nil, released: released))
            }
            for batch in reopened { try db.run("UPDATE batches SET finished_at=NULL WHERE name=?", .text(batch)) }
            return out
        }
    }

    /// Sets the skipped jobs of `batch` that depend (directly or not) on `root` back to
    /// `waiting`; the coordinator releases or skips them again as their dependencies end.
    private func releaseSkipped(batch: String, below root: String, by label: String, at time: Double) throws -> [String] {
        let jobs = try batchJobs(batch)
        var downstream: Set<String> = [root]
        var grew = true
        while grew {
            grew = false
            for j in jobs {
                guard let id = j.batchJob, !downstream.contains(id), (j.request.after ?? []).contains(where: { downstream.contains($0.job) }) else { continue }
                downstream.insert(id)
                grew = true
            }
        }
        var released: [String] = []
        for j in jobs where j.state == .skipped && j.batchJob != root && downstream.contains(j.batchJob ?? "") {
            guard try db.run("UPDATE jobs SET state='waiting', reason=NULL, ended_at=NULL WHERE id=? AND state='skipped'", .int(Int64(j.id))) > 0 else { continue }
            try audit("retry", job: j.id, state: "waiting", "job \(j.label) waits again: \(label), which it depends on, is re-driven", time: time)
            released.append(j.label)
        }
        return released
    }
}
