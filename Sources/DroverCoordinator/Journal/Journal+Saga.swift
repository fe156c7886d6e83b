import Foundation

/// Why `drover compensate` cannot start (or resume) a saga.
public struct SagaError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Sagas (docs/batches.md, "Compensation"): a batch's `saga` column, each job's `compensation`
/// state and the compensation jobs (`compensates` names the job they undo).
extension Journal {
    /// `drover compensate BATCH [--resume]`: asks the coordinator to run the batch's
    /// compensations; `resume` retries the one that failed and goes on from there.
    @discardableResult
    public func requestCompensation(_ name: String, resume: Bool, by who: String) throws -> BatchRecord {
        try db.transaction {
            guard let batch = try batch(named: name) else { throw SagaError(message: "no batch \(name) (see `drover ps`)") }
            let jobs = try batchJobs(name)
            let open = jobs.filter { !$0.state.isFinal }
            if !open.isEmpty {
                throw SagaError(message: "batch \(name) still has \(open.count) unfinished job(s) (\(open.prefix(3).map(\.label).joined(separator: ", "))); wait for them or cancel them (drover cancel \(name)) first")
            }
            if !jobs.contains(where: { $0.state == .succeeded && $0.request.compensate != nil }) {
                throw SagaError(message: "batch \(name) has no succeeded job with a `compensate` command: nothing to undo")
            }
            switch batch.saga {
            case "compensating"?: throw SagaError(message: "batch \(name) is being compensated already (drover status \(name))")
            case "compensated"?: throw SagaError(message: "batch \(name) was compensated already")
            case "stopped"? where !resume:
                throw SagaError(message: "batch \(name)'s compensation stopped at a compensation that failed; fix its cause and run `drover compensate \(name) --resume`")
            case nil where resume: throw SagaError(message: "batch \(name) has no compensation to resume; run `drover compensate \(name)`")
            default: break
            }
            let retried = try db.run("UPDATE jobs SET compensation=NULL WHERE batch=? AND superseded=0 AND compensation='compensation_failed'", .text(name))
            try setSaga(name, "compensating")
            try audit("saga", "batch \(name): compensation \(resume ? "resumed (\(retried) failed compensation(s) run again)" : "started") by \(who)")
            var b = batch
            b.saga = "compensating"
            return b
        }
    }

    /// Records the saga state of a batch.
    public func setSaga(_ name: String, _ state: String?) throws {
        try db.run("UPDATE batches SET saga=? WHERE name=?", .from(state), .text(name))
    }

    /// Batches whose compensations are under way.
    public func sagasUnderWay() throws -> [String] {
        try db.query("SELECT name FROM batches WHERE saga='compensating' ORDER BY name").compactMap { $0.string("name") }
    }

    /// Records `job`'s compensation state (and its compensation job, when one was made).
    public func setCompensation(_ job: Int, _ state: CompensationState?, compensationJob: Int? = nil) throws {
        if let compensationJob {
            try db.run("UPDATE jobs SET compensation=?, compensation_job=? WHERE id=?", .from(state?.rawValue), .int(Int64(compensationJob)), .int(Int64(job)))
        } else {
            try db.run("UPDATE jobs SET compensation=? WHERE id=?", .from(state?.rawValue), .int(Int64(job)))
        }
    }

    /// Records the compensation job of `original` (queued, a job like any other to the scheduler).
    func insertCompensation(_ request: JobRequest, of original: JobRecord) throws -> Int {
        let id = try insert(request)
        try db.run("UPDATE jobs SET compensates=? WHERE id=?", .int(Int64(original.id)), .int(Int64(id)))
        return id
    }
}
