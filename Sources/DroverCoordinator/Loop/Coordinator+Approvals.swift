import DroverCore
import Foundation

/// When the loop must look at the approval gates again: their escalations and timeouts.
/// Owned by `Coordinator+Approvals`.
struct ApprovalClock {
    /// The next gate deadline (Unix seconds); nil: look now (a job was released, which may be
    /// a new gate with its own timeout).
    var due: Double?

    /// Whether the gates must be looked at `now`.
    func isDue(at now: Double) -> Bool { due.map { now >= $0 } ?? true }
}

extension Coordinator {
    /// Approval gates and their SLA: announces each gate once (`approval_waiting`), escalates
    /// it after `escalate_after` (`approval_escalated`) and applies `on_timeout` when its
    /// `timeout` passes; returns when the next of these deadlines falls.
    func checkApprovals() throws -> Double? {
        var next: Double?
        for job in try journal.jobs(in: [.approval]) {
            guard let since = job.startedAt else { continue }
            let now = wallNow
            let escalateAt = job.request.escalateAfter.flatMap { job.escalation == nil || job.escalation == "waiting" ? since + $0 : nil }
            let timeoutAt = job.request.timeout.flatMap { job.escalation != "timed_out" ? since + $0 : nil }
            for t in [escalateAt, timeoutAt].compactMap({ $0 }) where t > now { next = min(next ?? t, t) }
            guard job.escalation == nil || escalateAt.map({ now >= $0 }) == true || timeoutAt.map({ now >= $0 }) == true else { continue }
            try journal.db.transaction {
                if job.escalation == nil {
                    try journal.setEscalation(job.id, "waiting")
                    try notify(.approvalWaiting, batch: job.batch, job: job, message: "\(job.label) awaits approval (drover approve \(job.label))")
                }
                if let after = job.request.escalateAfter, let at = escalateAt, now >= at {
                    let text = "\(job.label) not approved within \(Durations.clock(after)): escalated"
                    try journal.setEscalation(job.id, "escalated")
                    try journal.audit("approval", job: job.id, state: "escalated", text)
                    try notify(.approvalEscalated, batch: job.batch, job: job, message: text) { $0.set("waited_seconds", wallNow - since) }
                }
                guard let timeout = job.request.timeout, let at = timeoutAt, now >= at else { return }
                let waited = "not approved within \(Durations.clock(timeout))"
                switch job.request.onTimeout ?? .fail {
                case .fail:
                    try finish(job, .failed, reason: "\(waited) (timeout)")
                case .approve:
                    try finish(job, .succeeded, reason: "approved by its timeout: \(waited) (on_timeout approve)", exitCode: 0)
                case .wait:
                    let text = "\(job.label) \(waited) (timeout); still waiting for `drover approve` (on_timeout wait)"
                    try journal.setEscalation(job.id, "timed_out")
                    try journal.audit("approval", job: job.id, state: "timed_out", text)
                    try notify(.approvalEscalated, batch: job.batch, job: job, message: text) {
                        $0.set("waited_seconds", wallNow - since)
                        $0.set("timed_out", true)
                    }
                }
            }
        }
        return next ?? wallNow + 3600
    }
}
