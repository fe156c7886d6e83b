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
            let waiting = try journal.waitingJobs()
            guard !waiting.isEmpty else { return }
            try hashInputsOfReleasable(waiting)
            var states: [String: [String: JobState]] = [:]
            try journal.db.transaction {
                for job in waiting {
                    guard let batch = job.batch else { continue }
                    if states[batch] == nil { states[batch] = try journal.batchJobStates(batch) }
                    switch Self.readiness(of: job, among: states[batch]!) {
                    case .blocked(let d, let s):
                        try finish(job, .skipped, reason: "\(d.job) \(s.rawValue) (after \(d.job):\(d.condition.rawValue))")
                        states[batch]?[job.batchJob ?? ""] = .skipped
                        changed = true
                    case .ready:
                        let next: JobState = job.request.approval == true ? .approval : .queued
                        try journal.release(job.id, to: next, at: wallNow)
                        try journal.audit("job", job: job.id, state: next.rawValue,
                                          "job \(job.label) \(next == .approval ? "awaits approval (drover approve \(job.label))" : "queued: its dependencies are done")")
                        states[batch]?[job.batchJob ?? ""] = next
                        agenda.schedule = true
                    case .waiting:
                        break
                    }
                }
            }
        }
    }

    /// Whether a waiting job can go on, given the states of its batch's jobs.
    enum Readiness {
        case ready, waiting
        /// A dependency ended in a way that can no longer satisfy it: the job is skipped.
        case blocked(Dependency, JobState)
    }

    static func readiness(of job: JobRecord, among states: [String: JobState]) -> Readiness {
        var ready = true
        var blocker: (Dependency, JobState)?
        for d in job.request.after ?? [] {
            // A dependency missing from the batch (left out by --limit) never completes.
            guard let s = states[d.job] else { ready = false; continue }
            switch d.satisfied(by: s) {
            case true?: continue
            case false?: blocker = blocker ?? (d, s)
            case nil: ready = false
            }
        }
        if let (d, s) = blocker { return .blocked(d, s) }
        return ready ? .ready : .waiting
    }

    /// Hashes (into `hashes`) the upstream outputs that waiting jobs about to be released
    /// take as inputs (`from`), before the release's transaction: `schedule()` then finds them
    /// cached inside its own, and no write transaction waits for a big file to be read.
    func hashInputsOfReleasable(_ waiting: [JobRecord]) throws {
        let taking = waiting.filter { $0.request.inputs?.contains { $0.from != nil } == true }
        var states: [String: [String: JobState]] = [:]
        for job in taking {
            guard let batch = job.batch else { continue }
            if states[batch] == nil { states[batch] = try journal.batchJobStates(batch) }
            guard case .ready = Self.readiness(of: job, among: states[batch]!) else { continue }
            // A staging problem is reported when the job is dispatched.
            _ = try? stagedInputs(job)
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
                    try journal.requestCancel(job: other.id, reason: reason)
                    agenda.requests = true
                }
            }
        }
    }

    /// Batches whose every job is over: record the end and write their report.
    func checkFinishedBatches() throws {
        for name in try journal.batchesOver() {
            guard let batch = try journal.batch(named: name) else { continue }
            let jobs = try journal.batchJobs(name)
            try journal.db.transaction {
                try journal.markBatchFinished(name, at: wallNow)
                let counts = Dictionary(grouping: jobs, by: \.state).map { "\($0.value.count) \($0.key.rawValue)" }.sorted().joined(separator: ", ")
                try journal.audit("batch", "batch \(name) finished: \(counts)")
                try notify(.batchFinished, batch: name, message: "batch \(name) finished: \(counts)") { o in
                    var totals = JSONObject()
                    for s in JobState.allCases where s.isFinal { totals.set(s.rawValue, jobs.count { $0.state == s }) }
                    o.set("totals", object: totals)
                    o.set("succeeded", jobs.allSatisfy { $0.state == .succeeded })
                    o.set("report", batch.folder + "/report.json")
                }
                try startSagaIfAsked(batch, jobs: jobs)
            }
            do {
                let report = try BatchReport.build(journal, batch: batch)
                try report.write(to: batch.folder + "/report.json")
                // The report of a large batch is a peak of tens of MiB that glibc would keep.
                if jobs.count >= 1_000 { FreeMemory.release() }
            } catch {
                log("batch \(name): cannot write its report: \(error)")
                try? journal.audit("batch", "batch \(name): report not written: \(error)")
            }
        }
    }

    /// The earliest pending retry back-off end, if any.
    func nextWake() throws -> Double? {
        try journal.nextRetry(after: wallNow)
    }
}
