import DroverCore
import DroverInventory
import Foundation

/// A batch as recorded in the journal.
public struct BatchRecord: Sendable {
    public var name: String
    public var failFast: Bool
    /// The results root (`results/<batch>/` lives under it).
    public var results: String
    public var file: String?
    public var submittedAt: Double
    public var finishedAt: Double?
    /// How many times it was submitted.
    public var generation: Int
    /// The policy `compensate-on-failure`.
    public var compensateOnFailure: Bool = false
    /// The saga's state: nil (none), `compensating`, `compensated` or `stopped`.
    public var saga: String? = nil
    /// Where this batch's notifications go.
    public var notify: [NotifyTarget] = []

    /// `<results>/<batch>`.
    public var folder: String { results + "/" + name }
}

/// What `submitBatch` did.
public struct BatchSubmitResult: Sendable {
    public var plan: BatchPlan
    /// Journal ids of the jobs recorded, by batch job id.
    public var ids: [String: Int]
    public var generation: Int
    /// The last audit event before this submission: a follower that reads the batch's events
    /// from here sees every change of the submitted jobs, also those before it started.
    public var eventsBefore = 0
}

extension Journal {
    /// Records a batch (or a resubmission of it) in one transaction and returns the plan it applied.
    public func submitBatch(_ spec: BatchSpec, results: String, restart: Bool = false, limit: Int? = nil) throws -> BatchSubmitResult {
        try db.transaction {
            let eventsBefore = try db.query("SELECT COALESCE(MAX(id), 0) AS n FROM events").first?.int("n") ?? 0
            let plan = try BatchPlan.make(spec, existing: try Self.existingJobs(db, batch: spec.name), restart: restart, limit: limit)
            let now = Date().timeIntervalSince1970
            let previous = try batch(named: spec.name)
            let generation = (previous?.generation ?? 0) + 1
            let notify = spec.notify.isEmpty ? nil : String(decoding: try JSONEncoder().encode(spec.notify), as: UTF8.self)
            try db.run("""
                INSERT INTO batches(name, fail_fast, results, file, submitted_at, generation, compensate, notify) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET fail_fast=excluded.fail_fast, results=excluded.results, file=excluded.file,
                  submitted_at=excluded.submitted_at, finished_at=NULL, generation=excluded.generation,
                  compensate=excluded.compensate, notify=excluded.notify, saga=NULL
                """, .text(spec.name), .int(spec.failFast ? 1 : 0), .text(results), .text(spec.file), .double(now), .int(Int64(generation)),
                       .int(spec.compensateOnFailure ? 1 : 0), .from(notify))
            for row in plan.cancel {
                try db.run("UPDATE jobs SET cancel_requested=1 WHERE id=?", .int(Int64(row)))
                try audit("cancel_requested", job: row, "cancelled: batch \(spec.name) restarted")
            }
            for row in plan.retire { try db.run("UPDATE jobs SET superseded=1 WHERE id=?", .int(Int64(row))) }
            var ids: [String: Int] = [:]
            for (job, _) in plan.run {
                var request = job.request
                let hash = BatchPlan.specHash(request)
                request.name = "\(spec.name)/\(job.id)"
                let state: JobState = !job.dependencies.isEmpty ? .waiting : (request.approval == true ? .approval : .queued)
                ids[job.id] = try insert(request, state: state, batch: spec.name, batchJob: job.id, specHash: hash)
            }
            try audit("batch", "batch \(spec.name) submitted (generation \(generation)): \(plan.run.count) job(s) to run, \(plan.kept.count) kept from before\(plan.limitedOut.isEmpty ? "" : ", \(plan.limitedOut.count) left out by --limit")")
            return BatchSubmitResult(plan: plan, ids: ids, generation: generation, eventsBefore: eventsBefore)
        }
    }

    /// What an earlier submission of a batch left, by job id (also for readers that must not
    /// write, like --dry-run).
    public static func existingJobs(_ db: SQLiteDatabase, batch: String) throws -> [String: BatchPlan.Existing] {
        var existing: [String: BatchPlan.Existing] = [:]
        for r in try db.query("SELECT id, batch_job, state, spec_hash, compensation FROM jobs WHERE batch=? AND superseded=0", .text(batch)) {
            guard let id = r.int("id"), let job = r.string("batch_job"), var state = r.string("state").flatMap(JobState.init(rawValue:)) else { continue }
            // A job whose compensation ran (or began) was undone: a resubmission runs it again.
            if state == .succeeded, r.string("compensation") != nil { state = .cancelled }
            existing[job] = .init(row: id, state: state, specHash: r.string("spec_hash"))
        }
        return existing
    }

    /// Current jobs of a batch (each batch job's latest row), in dependency order of submission.
    public func batchJobs(_ name: String) throws -> [JobRecord] {
        try db.query("SELECT \(Self.jobColumns) FROM jobs WHERE batch=? AND superseded=0 ORDER BY id", .text(name)).compactMap(job(from:))
    }

    /// One batch, or nil.
    public func batch(named name: String) throws -> BatchRecord? {
        try db.query("SELECT * FROM batches WHERE name=?", .text(name)).first.map(batch(from:))
    }

    /// Every batch, newest first.
    public func batches() throws -> [BatchRecord] {
        try db.query("SELECT * FROM batches ORDER BY submitted_at DESC").map(batch(from:))
    }

    func batch(from r: SQLRow) -> BatchRecord {
        BatchRecord(name: r.string("name") ?? "", failFast: r.int("fail_fast") == 1, results: r.string("results") ?? "",
                    file: r.string("file"), submittedAt: r.double("submitted_at") ?? 0, finishedAt: r.double("finished_at"),
                    generation: r.int("generation") ?? 1, compensateOnFailure: r.int("compensate") == 1, saga: r.string("saga"),
                    notify: r.string("notify").flatMap { try? JSONDecoder().decode([NotifyTarget].self, from: Data($0.utf8)) } ?? [])
    }

    /// The current job `BATCH/JOB`, or nil.
    public func batchJob(_ batch: String, _ job: String) throws -> JobRecord? {
        try db.query("SELECT \(Self.jobColumns) FROM jobs WHERE batch=? AND batch_job=? AND superseded=0 ORDER BY id DESC LIMIT 1",
                     .text(batch), .text(job)).first.flatMap(job(from:))
    }

    // MARK: The coordinator's side

    /// Batch jobs waiting for their dependencies, oldest first.
    public func waitingJobs() throws -> [JobRecord] {
        try db.query("SELECT \(Self.jobColumns) FROM jobs WHERE state='waiting' AND superseded=0 ORDER BY id").compactMap(job(from:))
    }

    /// The state of each current job of a batch, by batch job id.
    public func batchJobStates(_ batch: String) throws -> [String: JobState] {
        var states: [String: JobState] = [:]
        for r in try db.query("SELECT batch_job, state FROM jobs WHERE batch=? AND superseded=0", .text(batch)) {
            if let j = r.string("batch_job"), let s = r.string("state").flatMap(JobState.init(rawValue:)) { states[j] = s }
        }
        return states
    }

    /// Moves a waiting job on (to `queued` or `approval`, which starts its clock at `time`);
    /// false when it was no longer waiting.
    @discardableResult
    public func release(_ id: Int, to next: JobState, at time: Double) throws -> Bool {
        try db.run("UPDATE jobs SET state=?, started_at=? WHERE id=? AND state='waiting'",
                   .text(next.rawValue), next == .approval ? .double(time) : .null, .int(Int64(id))) > 0
    }

    /// Asks the coordinator to cancel a running job, saying why (`reason` becomes the job's), and audits it.
    public func requestCancel(job id: Int, reason: String) throws {
        try db.run("UPDATE jobs SET cancel_requested=1, reason=? WHERE id=?", .text(reason), .int(Int64(id)))
        try audit("cancel_requested", job: id, reason)
    }

    /// Cancels a job that is still open because it ran too long (`drover map --timeout N%`):
    /// `reason` (starting `timed out`) stays its reason. False when it was over or cancelled already.
    public func requestTimeout(job id: Int, reason: String) throws -> Bool {
        try db.transaction {
            let n = try db.run("UPDATE jobs SET cancel_requested=1, reason=? WHERE id=? AND cancel_requested=0 AND state NOT IN \(JobState.finalSQL)",
                               .text(reason), .int(Int64(id)))
            if n > 0 { try audit("cancel_requested", job: id, reason) }
            return n > 0
        }
    }

    /// Batches not marked finished whose every current job is over.
    public func batchesOver() throws -> [String] {
        try db.query("""
            SELECT b.name AS name FROM batches b WHERE b.finished_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch=b.name AND j.superseded=0 AND j.state IN \(JobState.openSQL))
            """).compactMap { $0.string("name") }
    }

    /// Records the end of a batch.
    public func markBatchFinished(_ name: String, at time: Double) throws {
        try db.run("UPDATE batches SET finished_at=? WHERE name=?", .double(time), .text(name))
    }

    /// Completes an approval gate; returns the job, or throws with why it cannot be approved.
    public func approve(_ batch: String, _ jobID: String, by who: String) throws -> JobRecord {
        try db.transaction {
            guard let job = try batchJob(batch, jobID) else { throw ApprovalError(message: "no job \(batch)/\(jobID) (see `drover status \(batch)`)") }
            guard job.request.approval == true else { throw ApprovalError(message: "\(batch)/\(jobID) is not an approval gate") }
            switch job.state {
            case .approval: break
            case .waiting: throw ApprovalError(message: "\(batch)/\(jobID) still waits for \(job.request.after?.map(\.job).joined(separator: ", ") ?? "its dependencies"); approve it once they are done")
            default: throw ApprovalError(message: "\(batch)/\(jobID) is already \(job.state.rawValue)\(job.reason.map { " (\($0))" } ?? "")")
            }
            let now = Date().timeIntervalSince1970
            try db.run("UPDATE jobs SET state='succeeded', reason=?, ended_at=?, exit_code=0 WHERE id=? AND state='approval'",
                       .text("approved by \(who)"), .double(now), .int(Int64(job.id)))
            try audit("job", job: job.id, state: "succeeded", "job \(job.id) (\(batch)/\(jobID)) approved by \(who)")
            var done = job
            done.state = .succeeded
            return done
        }
    }
}

public struct ApprovalError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
