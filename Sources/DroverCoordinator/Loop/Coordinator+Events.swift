import DroverCore
import DroverProtocol
import Foundation

extension Coordinator {
    /// Applies lines of an agent's stream: heartbeats feed liveness; events are applied in
    /// one transaction together with the host's last applied sequence, so each is applied
    /// exactly once, also across reconnects and coordinator restarts.
    func receive(_ host: String, lines: [String]) {
        var heartbeat: JSONNode?
        var caughtUpTo: Int?
        // What was applied when the stream reached the log's end: the events after the
        // `caught_up` line in the same batch are newer than the log the agent measured.
        var appliedAtCaughtUp = 0
        var outbox: [String: [String]] = [:]
        var seq = roster.lastSeq[host] ?? 0
        let before = seq
        var events: [(seq: Int, node: JSONNode)] = []
        for line in lines {
            guard let node = try? JSONParser.parse(line) else {
                log("\(host): unreadable line from the agent: \(line.prefix(200))")
                continue
            }
            if let hb = node["heartbeat"] {
                heartbeat = hb
            } else if let c = node["caught_up"] {
                caughtUpTo = c.intValue ?? Int.max
                appliedAtCaughtUp = max(before, events.last?.seq ?? 0)
            } else if let s = node["seq"]?.intValue {
                events.append((s, node))
            } else if let f = node["facts"] {
                recordFacts(host, HostFactsReport.parse(f))
            }
        }
        // A routine beat of a host that is up waits for the next flush (`HeartbeatLog`), unless
        // events or the end of the backlog are written now anyway.
        let beatKey = heartbeat.map(HeartbeatLog.key)
        let routine = beatKey.map { beats.isRoutine(host, key: $0, hostUp: roster.hostState[host] == "up") } ?? false
        let recordBeat = heartbeat != nil && (!routine || !events.isEmpty || caughtUpTo != nil)
        if let hb = heartbeat, !recordBeat {
            beats.hold(beat(hb, host: host), host: host, at: now)
        }
        if events.isEmpty && caughtUpTo == nil && !recordBeat {
            observe(heartbeat, host: host)
            return
        }
        do {
            // The breakers judge the events' ends: in step with the journal first.
            try resyncBreakersAfterRollback()
            try journal.db.transaction {
                defer { results.applyingSeq = 0 }
                for (s, node) in events {
                    if s <= seq { continue }  // already applied (a resumed stream)
                    seq = s
                    results.applyingSeq = s
                    try apply(node, host: host, outbox: &outbox)
                }
                if seq != roster.lastSeq[host] {
                    try journal.setLastSeq(host, seq)
                }
                if let hb = heartbeat, recordBeat {
                    try journal.recordHeartbeat(host, beat(hb, host: host))
                }
            }
            if recordBeat, let beatKey { beats.wrote(host, key: beatKey, at: now) }
            roster.lastSeq[host] = seq
        } catch {
            // Nothing of the batch was applied; the stream is restarted from the last applied sequence.
            results.abandonPending()
            checkpoints.abandonPending()
            log("\(host): could not apply agent events: \(error); reconnecting")
            roster.links[host]?.restart()
            return
        }
        observe(heartbeat, host: host)
        flush(outbox)
        flushCollections()
        // Applied events (a slot freed, a job ended) and a host's first beat are the loop's work;
        // a routine heartbeat of a host that is up is not.
        if caughtUpTo != nil || (heartbeat != nil && roster.hostState[host] != "up") { agenda.hosts = true }
        if seq != before || agenda.hosts { doorbell.ring() }
        if let end = caughtUpTo, end < appliedAtCaughtUp {
            replacedEventLog(host, endsAt: end)
            return
        }
        if caughtUpTo != nil {
            roster.caughtUp.insert(host)
            do {
                try reconcile(host)
                try recollect(host)
            } catch { log("\(host): reconcile: \(error)") }
        }
    }

    /// Applies one agent event (inside the caller's transaction).
    func apply(_ event: JSONNode, host: String, outbox: inout [String: [String]]) throws {
        let time = event["time"]?.doubleValue ?? wallNow
        switch AgentEvent.parse(event) {
        case .transition(let t):
            guard let id = jobID(fromAgentJob: t.job) else { return }
            try applyTransition(t, job: id, host: host, time: time, outbox: &outbox)
        case .rejected(let file, let reason, let start):
            // Resent starts of attempts the agent already has are expected after a reconnect.
            if !reason.contains("already exists") {
                try journal.audit("rejected", host: host, "\(host) rejected \(file): \(reason)", time: time)
                log("\(host): agent rejected \(file): \(reason)")
            }
            // A start the agent refused never runs there: end the attempt (the retry policy's
            // `start_failed`) rather than leave it `dispatched` until the next reconnect.
            if let start, let id = jobID(fromAgentJob: start.job), let a = try journal.attempt(id, start.attempt), a.host == host,
               try journal.markStartFailed(job: id, attempt: start.attempt, reason: "refused by the agent on \(host): \(reason)", at: time) {
                try journal.audit("attempt", job: id, attempt: start.attempt, host: host, state: "start_failed",
                                  "attempt \(start.attempt) of job \(id) on \(host): the agent refused to start it: \(reason)", time: time)
                try conclude(id, attempt: start.attempt)
            }
        case .leaseExpired(let coordinator, _, let orphaned):
            // Another coordinator's lease (one that shares this agent) is none of our business.
            guard coordinator == cid else { return }
            try journal.audit("lease_expired", host: host, "the agent on \(host) lost its lease (\(orphaned) attempt(s) orphaned)", time: time)
        case .ownerChanged(let previousMachineID, let previous, _, _):
            try journal.audit("host", host: host, "the agent on \(host) took its state directory over from \(previous) (machine id \(previousMachineID.prefix(12))), whose agent had stopped beating; that agent's unfinished attempts are lost", time: time)
        case .agentStarted(let pid, _, _):
            try journal.audit("agent", host: host, "agent started on \(host) (pid \(pid))", time: time)
        case .agentStopped(let pid):
            try journal.audit("agent", host: host, "agent stopped on \(host) (pid \(pid))", time: time)
        case .checkpoint(let c):
            try checkpointTaken(c, host: host, time: time)
        case .other:
            break
        }
    }

    func applyTransition(_ event: TransitionEvent, job id: Int, host: String, time: Double, outbox: inout [String: [String]]) throws {
        let n = event.attempt
        let state = event.state.rawValue
        guard let a = try journal.attempt(id, n), a.host == host, let job = try journal.job(id) else {
            try journal.audit("unknown", job: id, attempt: n, host: host, state: state, "\(host) reports attempt \(n) of job \(id), which this journal never sent there", time: time)
            return
        }
        let final = AgentStates.final.contains(state)
        let current = !a.stale && job.attempt == n && !job.state.isFinal
        let detail = event.summary
        var update = Journal.AttemptUpdate(agentState: state, startedAt: state == "running" ? time : nil)
        if final { update.ended = (time, event.exitCode, event.signal, event.maxRSSBytes, event.cpuSeconds ?? 0) }
        if current || final { update.state = current || a.state != "lost" ? state : "lost" }
        if final && current { update.reason = detail }
        try journal.updateAttempt(id, n, update)
        guard current else {
            try journal.audit(final ? "late_result" : "attempt", job: id, attempt: n, host: host, state: state,
                              final ? "attempt \(n) of job \(id) on \(host) ended \(detail) after it was replaced; ignored (the job is \(job.state.rawValue))"
                                    : "attempt \(n) of job \(id) on \(host): \(state) (replaced)", time: time)
            return
        }
        try journal.audit("attempt", job: id, attempt: n, host: host, state: state, "attempt \(n) of job \(job.label) on \(host): \(detail.isEmpty ? state : detail)", time: time)
        if state == "running" {
            try journal.markJobRunning(id, at: time)
        }
        guard final else { return }
        agenda.schedule = true
        if let output = event.output, !output.stderr.isEmpty, !(state == "exited" && event.exitCode == 0) {
            // The evidence if the host turns out to be a black hole (`Coordinator+Quarantine`).
            try journal.setStderrHead(job: id, attempt: n, String(decoding: output.stderr.prefix(400), as: UTF8.self))
        }
        if job.batch == nil, let output = event.output {
            // Kept here, so `drover run` and `drover logs` need no connection to the host for it.
            AttemptOutput.store(output, state: journal.state, job: id, attempt: n)
        }
        if let collection = collection(for: job, attempt: n, state: state, host: host) {
            if collection.outputs.isEmpty, let output = event.output {
                // Small results came with the end: no round trip to fetch them.
                results.end(job: id, attempt: n)
                switch storeInline(output, in: collection.destination) {
                case .done(let files, let bytes):
                    try journal.audit("collected", job: id, attempt: n, host: host, "received \(files) file(s), \(bytes) bytes, of attempt \(n) from \(host) with its end", time: time)
                    try conclude(id, attempt: n)
                case .missingOutputs(let problem), .failed(let problem):
                    try journal.audit("collected", job: id, attempt: n, host: host, "attempt \(n) on \(host): \(problem)", time: time)
                    try conclude(id, attempt: n, outputsProblem: problem)
                }
                return
            }
            results.pending.append((host, collection))
            return
        }
        try conclude(id, attempt: n)
    }
}
