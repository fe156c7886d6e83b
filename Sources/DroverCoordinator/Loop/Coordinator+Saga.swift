import DroverCore
import Foundation

/// Sagas: when a batch fails for good (policy `compensate-on-failure`, or `drover compensate`),
/// the compensations of its jobs that succeeded run in reverse dependency order — a job's only
/// after those of every job that depended on it. Each compensation is a job of the journal
/// (`compensates` links it to the job it undoes), so the scheduler places, retries and re-runs
/// it after a host loss like any other; the original job records `compensating`,
/// `compensated` or `compensation_failed`.
extension Coordinator {
    /// A batch just finished: starts its saga when its policy asks and a job failed for good.
    func startSagaIfAsked(_ batch: BatchRecord, jobs: [JobRecord]) throws {
        guard batch.compensateOnFailure, batch.saga == nil, jobs.contains(where: { $0.state == .failed }) else { return }
        guard jobs.contains(where: { $0.state == .succeeded && $0.request.compensate != nil }) else {
            try journal.audit("saga", "batch \(batch.name) failed; no succeeded job has a compensation, so nothing is undone")
            return
        }
        try journal.setSaga(batch.name, "compensating")
        try journal.audit("saga", "batch \(batch.name) failed: compensating the jobs that succeeded (compensate-on-failure)")
        agenda.sagas = true
    }

    /// Moves every saga under way on: records compensations that ended, starts those whose
    /// dependents are all compensated, and ends the saga (compensated, or stopped at a failure).
    func advanceSagas() throws {
        for name in try journal.sagasUnderWay() {
            guard let batch = try journal.batch(named: name) else { continue }
            var finished = false
            try journal.db.transaction {
                finished = try advance(batch, jobs: try journal.batchJobs(name))
            }
            if finished { writeReport(batch) }
        }
    }

    /// One step of one saga; true when the saga ended (compensated or stopped).
    private func advance(_ batch: BatchRecord, jobs: [JobRecord]) throws -> Bool {
        let targets = jobs.filter { $0.state == .succeeded && $0.request.compensate != nil }
        var state: [Int: CompensationState?] = Dictionary(uniqueKeysWithValues: targets.map { ($0.id, $0.compensation) })
        for job in targets where job.compensation == .compensating {
            guard let cid = job.compensationJob, let c = try journal.job(cid), c.state.isFinal else { continue }
            if c.state == .succeeded {
                try journal.setCompensation(job.id, .compensated)
                try journal.audit("saga", job: job.id, host: c.host, state: CompensationState.compensated.rawValue,
                                  "\(job.label) compensated (compensation job \(c.id) on \(c.host ?? "?"))")
                state[job.id] = .compensated
            } else {
                try journal.setCompensation(job.id, .compensationFailed)
                let left = targets.filter { state[$0.id] != .compensated && $0.id != job.id }.map(\.label)
                try journal.audit("saga", job: job.id, host: c.host, state: CompensationState.compensationFailed.rawValue,
                                  "\(job.label) compensation_failed: job \(c.id) \(c.state.rawValue)\(c.reason.map { " (\($0))" } ?? ""); the saga of \(batch.name) stopped: still to undo \(([job.label] + left).joined(separator: ", ")); fix the cause and run `drover compensate \(batch.name) --resume`")
                try journal.setSaga(batch.name, "stopped")
                return true
            }
        }
        let byBatchID = Dictionary(jobs.map { ($0.batchJob ?? "", $0) }) { a, _ in a }
        let dependents = Self.dependents(of: jobs)
        for job in targets where state[job.id] == .some(nil) {
            // Every target downstream of this job (transitively) must be compensated first.
            let waitsFor = Self.downstream(job.batchJob ?? "", dependents).compactMap { byBatchID[$0] }.filter { state[$0.id] != nil }
            guard waitsFor.allSatisfy({ state[$0.id] == .compensated }) else { continue }
            let id = try journal.insertCompensation(compensationRequest(job, batch: batch), of: job)
            try journal.setCompensation(job.id, .compensating, compensationJob: id)
            try journal.audit("saga", job: job.id, state: CompensationState.compensating.rawValue,
                              "\(job.label) compensating: job \(id) queued (\(job.request.compensate?.request.commandLine ?? ""))")
            state[job.id] = .compensating
            agenda.schedule = true
        }
        guard state.values.allSatisfy({ $0 == .compensated }) else { return false }
        try journal.setSaga(batch.name, "compensated")
        try journal.audit("saga", "batch \(batch.name) compensated: \(targets.count) compensation(s) succeeded")
        return true
    }

    /// The compensation job of `job`: its `compensate` command, with where it comes from in the environment.
    func compensationRequest(_ job: JobRecord, batch: BatchRecord) -> JobRequest {
        var r = job.request.compensate?.request ?? JobRequest(argv: ["true"])
        r.name = "\(job.label):compensate"
        r.env["DROVER_COMPENSATING"] = "1"
        r.env["DROVER_ORIGINAL_JOB"] = job.label
        r.env["DROVER_ORIGINAL_ATTEMPT"] = "\(agentJob(job.id))/\(job.attempt)"
        r.env["DROVER_ORIGINAL_HOST"] = job.host ?? ""
        r.env["DROVER_ORIGINAL_RESULTS"] = batch.folder + "/" + (job.batchJob ?? String(job.id))
        return r
    }

    /// For each batch job id, the ids of the jobs whose `after` names it.
    static func dependents(of jobs: [JobRecord]) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for j in jobs { for d in j.request.after ?? [] { out[d.job, default: []].append(j.batchJob ?? "") } }
        return out
    }

    /// Every job downstream of `id` (not itself).
    static func downstream(_ id: String, _ dependents: [String: [String]]) -> Set<String> {
        var seen: Set<String> = []
        var stack = dependents[id] ?? []
        while let next = stack.popLast() {
            if seen.insert(next).inserted { stack += dependents[next] ?? [] }
        }
        return seen
    }

    /// Writes the batch's report again (the saga changed it).
    func writeReport(_ batch: BatchRecord) {
        do {
            guard let fresh = try journal.batch(named: batch.name) else { return }
            try BatchReport.build(journal, batch: fresh).write(to: fresh.folder + "/report.json")
        } catch {
            log("batch \(batch.name): cannot write its report: \(error)")
        }
    }
}
