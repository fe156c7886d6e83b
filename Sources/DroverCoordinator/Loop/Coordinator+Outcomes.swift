import DroverCore
import Foundation

/// What becomes of a job: an attempt's end decides it (`conclude`), and a job ends for good
/// (`finish`) or goes back to the queue (`requeue`). These own no state of their own; they
/// set the loop's agenda for what a job's end may change.
extension Coordinator {
    /// Decides what a finished attempt means for its job (succeeded, retried, failed,
    /// cancelled), from the attempt as recorded; `outputsProblem` fails a successful exit.
    func conclude(_ id: Int, attempt n: Int, outputsProblem: String? = nil) throws {
        guard var job = try journal.job(id), let a = try journal.attempt(id, n), job.attempt == n, !job.state.isFinal, !a.stale,
              let state = a.agentState, AgentStates.final.contains(state) else { return }
        let host = a.host
        let detail = a.reason ?? state
        try journal.setJobExit(id, exitCode: a.exitCode, signal: a.signal)
        job.exitCode = a.exitCode
        job.signal = a.signal
        switch state {
        case "exited" where a.exitCode == 0 && outputsProblem == nil:
            try finish(job, .succeeded, reason: "exited 0", exitCode: 0)
        case "cancelled":
            try finish(job, .cancelled, reason: job.cancelRequested ? cancelReason(job, otherwise: "cancelled by user") : "cancelled on \(host)",
                       exitCode: a.exitCode, signal: a.signal)
        case "lost" where job.cancelRequested, "orphaned" where job.cancelRequested:
            try finish(job, .cancelled, reason: "cancelled by user (attempt \(state))", exitCode: a.exitCode, signal: a.signal)
        case "lost", "orphaned":
            try requeue(job, reason: "attempt \(n) \(detail) on \(host)", lost: true)
        case "exited" where !job.cancelRequested && a.exitCode != nil && a.exitCode == job.request.checkpoint?.exitCode:
            try restartFromCheckpoint(job, attempt: n, host: host)
        default:
            if job.cancelRequested {
                try finish(job, .cancelled, reason: "cancelled by user (\(state))", exitCode: a.exitCode, signal: a.signal)
            } else if let problem = outputsProblem, state == "exited", a.exitCode == 0 {
                try requeue(job, reason: "attempt \(n) exited 0 but \(problem)", lost: false, failure: .missingOutputs)
            } else {
                try requeue(job, reason: "attempt \(n) \(detail)", lost: false, failure: FailureKind(agentState: state, exitCode: a.exitCode))
            }
        }
        try judgeBreaker(a, job: job)
    }

    /// Ends a job for good (never twice: a final job is never changed again).
    func finish(_ job: JobRecord, _ state: JobState, reason: String, exitCode: Int? = nil, signal: String? = nil) throws {
        guard try journal.finishJob(job.id, state, reason: reason, exitCode: exitCode, signal: signal, at: wallNow) else { return }
        if job.cancelRequested { dispatch.forget(job: job.id, through: job.attempt) }
        agenda.batches = true
        if job.compensates != nil { agenda.sagas = true }
        if state == .succeeded && job.request.checkpoint != nil { checkpoints.storePruneDue = true }
        try journal.audit("job", job: job.id, attempt: job.attempt, host: job.host, state: state.rawValue, "job \(job.label) \(state.rawValue): \(reason)")
        if state == .failed { try notifyFailed(job, reason: reason, exitCode: exitCode, signal: signal) }
        guard let batch = job.batch else { return }
        agenda.dependents = true
        if state == .failed, try journal.batch(named: batch)?.failFast == true {
            try failFast(batch, failed: job)
        }
    }

    /// Why a job asked to stop ends cancelled: the reason recorded with the request (fail-fast
    /// and `drover map --timeout N%` record one in the job's reason), else `otherwise`.
    func cancelReason(_ job: JobRecord, otherwise: String) -> String {
        if let r = job.reason, r.hasPrefix("fail-fast") || r.hasPrefix("timed out") { return r }
        return otherwise
    }

    /// Puts a job back in the queue (after its back-off, for a failure), or fails it when its
    /// budget is spent or its retry policy does not retry this kind of failure.
    func requeue(_ job: JobRecord, reason: String, lost: Bool, failure: FailureKind? = nil) throws {
        let used = (lost ? job.losses : job.failures) + 1
        let policy = job.request.retryPolicy
        let budget = lost ? job.request.lostRetries : policy.maxAttempts - 1
        try journal.setRetriesUsed(job.id, used, lost: lost)
        if !lost, let failure, !policy.retries(failure) {
            let on = policy.on.map(\.description).joined(separator: ", ")
            try finish(job, .failed, reason: "\(reason) (not retried: retry.on is [\(on)])", exitCode: job.exitCode, signal: job.signal)
            return
        }
        if used > budget {
            let what = lost ? "lost its host \(used) time(s) (--lost-retries \(budget))" : "failed \(used) time(s) (\(policy.maxAttempts) attempt(s) allowed)"
            try finish(job, .failed, reason: "\(reason); \(what)", exitCode: job.exitCode, signal: job.signal)
            return
        }
        let delay = lost ? 0 : policy.delay(retry: used, random: Double.random(in: 0..<1))
        let notBefore = delay > 0 ? wallNow + delay : nil
        try journal.requeue(job.id, notBefore: notBefore)
        let when = delay > 0 ? " in \(String(format: "%.1f", delay)) s" : ""
        try journal.audit("job", job: job.id, attempt: job.attempt, state: "queued",
                          "job \(job.label) queued again\(when): \(reason) (\(lost ? "host-loss" : "failure") retry \(used) of \(budget))")
        if let notBefore { agenda.retry(at: notBefore) }
        agenda.schedule = true
    }
}
