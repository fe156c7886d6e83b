import DroverCore
import DroverProtocol
import Foundation

/// Reconciliation with a host whose link (re)connected and whose event backlog is applied:
/// what runs there is adopted, resent or stopped, and an agent whose event log was replaced
/// loses its unfinished attempts. Owns no state: the host's is in `HostRoster`.
extension Coordinator {
    /// After a host's event backlog is applied: adopt what still runs as planned, resend
    /// starts the agent never saw, and stop attempts that were replaced or whose job is over
    /// (or, with `keep-original`, keep an original whose replacement has not finished).
    func reconcile(_ host: String) throws {
        guard let spec = inventory.host(named: host) else { return }
        var outbox: [String: [String]] = [:]
        var starts: [(host: String, start: HostLink.Outgoing)] = []
        try journal.db.transaction {
            for a in try journal.liveAttempts(on: host) {
                guard let job = try journal.job(a.job) else { continue }
                let current = !a.stale && job.attempt == a.attempt && !job.state.isFinal
                if a.agentState == nil {
                    if current && !job.cancelRequested {
                        let slot = try journal.slot(of: a.job, attempt: a.attempt)
                        starts.append((host, startCommand(job, attempt: a.attempt, host: spec, slot: slot, files: (try? stagedInputs(job)) ?? [])))
                    } else {
                        // Never accepted and no longer wanted: make sure it never starts.
                        outbox[host, default: []].append(cancelCommand(job: a.job, attempt: a.attempt, reason: .stale))
                        try journal.markNeverStarted(a.job, attempt: a.attempt)
                    }
                    continue
                }
                if current {
                    if job.cancelRequested { outbox[host, default: []].append(cancelCommand(job: a.job, attempt: a.attempt, reason: .cancelled)) }
                    continue
                }
                if settings.stalePolicy == .keepOriginal, !job.state.isFinal, !job.cancelRequested, try keepOriginal(a, of: job, outbox: &outbox) {
                    continue
                }
                outbox[host, default: []].append(cancelCommand(job: a.job, attempt: a.attempt, reason: .stale))
                try journal.audit("stale", job: a.job, attempt: a.attempt, host: host, "attempt \(a.attempt) of job \(a.job) still runs on \(host) but was replaced: killing it (stale policy \(settings.stalePolicy.rawValue))")
            }
        }
        flush(outbox)
        send(starts)
    }

    /// `keep-original`: the original attempt `a` becomes the job's attempt again; a replacement
    /// that is queued is withdrawn and one that runs is cancelled.
    func keepOriginal(_ a: AttemptRecord, of job: JobRecord, outbox: inout [String: [String]]) throws -> Bool {
        if job.attempt != a.attempt {
            guard let replacement = try journal.attempt(job.id, job.attempt) else { return false }
            try journal.markStale(job.id, attempt: replacement.attempt, reason: "replaced by the original (keep-original)")
            outbox[replacement.host, default: []].append(cancelCommand(job: job.id, attempt: replacement.attempt, reason: .stale))
        }
        let state = a.agentState == "running" ? "running" : "dispatched"
        try journal.adoptAttempt(job.id, attempt: a.attempt, host: a.host, attemptState: a.agentState ?? "accepted", jobState: state)
        try journal.audit("stale", job: job.id, attempt: a.attempt, host: a.host, state: state,
                          "attempt \(a.attempt) of job \(job.id) still runs on \(a.host): kept (keep-original)\(job.attempt != a.attempt ? "; attempt \(job.attempt) cancelled" : "")")
        return true
    }

    /// The agent's event log ends before the last sequence applied: it is a new log (the state
    /// directory was wiped, or a tmpfs root did not survive a reboot), so nothing the host ran
    /// before will ever be reported. Its unfinished attempts are lost (their jobs re-run), and
    /// the stream starts again from the new log's first event.
    func replacedEventLog(_ host: String, endsAt end: Int) {
        let applied = roster.lastSeq[host] ?? 0
        do {
            try journal.db.transaction {
                try journal.audit("host", host: host, "the agent on \(host) has a new event log (it ends at seq \(end), seq \(applied) was applied): its state directory was replaced; its unfinished attempts are lost")
                try loseAttempts(on: host, reason: "the agent's state on \(host) was lost")
                // The agent will never report them: they count as ended, so the host does not wait for them.
                try journal.forgetAgentState(host)
            }
        } catch {
            log("\(host): could not record the replaced event log: \(error); reconnecting")
            roster.links[host]?.restart()
            return
        }
        roster.lastSeq[host] = 0
        agenda.schedule = true
        log("\(host): new event log (ends at seq \(end), seq \(applied) was applied); its unfinished attempts are lost; reading it from the start")
        roster.links[host]?.restart()
    }
}
