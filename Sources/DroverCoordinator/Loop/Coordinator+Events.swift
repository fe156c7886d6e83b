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
        var seq = lastSeq[host] ?? 0
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
        // A routine beat of a host that is up changes only its time and sequence: liveness
        // takes every beat (in memory); the journal gets the routine beats of every host
        // together, one transaction every `heartbeatRecordInterval` (`flushBeats`), or with
        // the host's next events. A beat that says something new is written at once.
        let beatKey = heartbeat.map { hb in
            ["version", "build", "cpus", "machine_id"].map { hb[$0]?.jsonText ?? "" }.joined(separator: "|") + "|\(hb["coordinators"]?.arrayValue?.count ?? -1)"
        }
        let routine = heartbeat != nil && hostState[host] == "up" && beatKey == heartbeatRecorded[host]?.key
        let recordBeat = heartbeat != nil && (!routine || !events.isEmpty || caughtUpTo != nil)
        if let hb = heartbeat, !recordBeat {
            pendingBeats[host] = beat(hb, host: host)
            if beatsFlushAt == nil { beatsFlushAt = now + Self.heartbeatRecordInterval }
        }
        if events.isEmpty && caughtUpTo == nil && !recordBeat {
            observe(heartbeat, host: host)
            return
        }
        do {
            try journal.db.transaction {
                defer { applyingSeq = 0 }
                for (s, node) in events {
                    if s <= seq { continue }  // already applied (a resumed stream)
                    seq = s
                    applyingSeq = s
                    try apply(node, host: host, outbox: &outbox)
                }
                if seq != lastSeq[host] {
                    try journal.setLastSeq(host, seq)
                }
                if let hb = heartbeat, recordBeat {
                    try journal.recordHeartbeat(host, beat(hb, host: host))
                }
            }
            if recordBeat, let beatKey {
                heartbeatRecorded[host] = (now, beatKey)
                pendingBeats[host] = nil
            }
            lastSeq[host] = seq
        } catch {
            // Nothing of the batch was applied; the stream is restarted from the last applied sequence.
            for (_, c) in pendingCollections { collecting.remove("\(c.job)/\(c.attempt)") }
            pendingCollections.removeAll()
            pendingPulls.removeAll()
            log("\(host): could not apply agent events: \(error); reconnecting")
            links[host]?.restart()
            return
        }
        observe(heartbeat, host: host)
        flush(outbox)
        flushCollections()
        // Applied events (a slot freed, a job ended) and a host's first beat are the loop's work;
        // a routine heartbeat of a host that is up is not.
        if caughtUpTo != nil || (heartbeat != nil && hostState[host] != "up") { hostsDirty = true }
        if seq != before || hostsDirty { doorbell.ring() }
        if let end = caughtUpTo, end < appliedAtCaughtUp {
            replacedEventLog(host, endsAt: end)
            return
        }
        if caughtUpTo != nil {
            caughtUp.insert(host)
            do {
                try reconcile(host)
                try recollect(host)
            } catch { log("\(host): reconcile: \(error)") }
        }
    }

    /// Feeds a heartbeat to the host's liveness (and notes its machine identity).
    func observe(_ heartbeat: JSONNode?, host: String) {
        guard let hb = heartbeat, let seq = hb["seq"]?.intValue else { return }
        if let c = hb["cpus"]?.intValue, cpus[host] != c {
            cpus[host] = c
            dirty = true
        }
        liveness[host]?.observe(seq: seq, pid: hb["pid"]?.intValue, interval: hb["interval"]?.doubleValue, at: now)
        if let m = hb["machine_id"]?.stringValue, !m.isEmpty {
            machineIDs[host] = m
            let key = HostProbe.systemKey(machineID: m, bootID: hb["boot_id"]?.stringValue, hostname: hb["hostname"]?.stringValue)
            if systemKeys[host] != key {
                systemKeys[host] = key
                do { try noteSameMachines() } catch { log("journal: \(error)") }
            }
        }
    }

    /// The agent's event log ends before the last sequence applied: it is a new log (the state
    /// directory was wiped, or a tmpfs root did not survive a reboot), so nothing the host ran
    /// before will ever be reported. Its unfinished attempts are lost (their jobs re-run), and
    /// the stream starts again from the new log's first event.
    func replacedEventLog(_ host: String, endsAt end: Int) {
        let applied = lastSeq[host] ?? 0
        do {
            try journal.db.transaction {
                try journal.audit("host", host: host, "the agent on \(host) has a new event log (it ends at seq \(end), seq \(applied) was applied): its state directory was replaced; its unfinished attempts are lost")
                try loseAttempts(on: host, reason: "the agent's state on \(host) was lost")
                // The agent will never report them: they count as ended, so the host does not wait for them.
                try journal.forgetAgentState(host)
            }
        } catch {
            log("\(host): could not record the replaced event log: \(error); reconnecting")
            links[host]?.restart()
            return
        }
        lastSeq[host] = 0
        dirty = true
        log("\(host): new event log (ends at seq \(end), seq \(applied) was applied); its unfinished attempts are lost; reading it from the start")
        links[host]?.restart()
    }

    /// Applies one agent event (inside the caller's transaction).
    func apply(_ event: JSONNode, host: String, outbox: inout [String: [String]]) throws {
        let time = event["time"]?.doubleValue ?? wallNow
        switch AgentEvent.parse(event) {
        case .transition(let t):
            guard let id = jobID(fromAgentJob: t.job) else { return }
            try applyTransition(t, job: id, host: host, time: time, outbox: &outbox)
        case .rejected(let file, let reason):
            // Resent starts of attempts the agent already has are expected after a reconnect.
            if !reason.contains("already exists") {
                try journal.audit("rejected", host: host, "\(host) rejected \(file): \(reason)", time: time)
                log("\(host): agent rejected \(file): \(reason)")
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
        dirty = true
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
                collecting.remove("\(id)/\(n)")
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
            pendingCollections.append((host, collection))
            return
        }
        try conclude(id, attempt: n)
    }

    /// Writes an attempt's inline stdout and stderr into its results folder (emptied first, so
    /// it always holds one attempt's results).
    func storeInline(_ output: InlineOutput, in folder: String) -> HostLink.CollectOutcome {
        if mkdir(folder, 0o755) != 0 {
            let why = errno
            // A folder of an earlier run that holds only stdout and stderr is reused (both are
            // replaced below); one with more in it (fetched outputs) is made anew.
            if !(why == EEXIST && AttemptOutput.holdsOnlyStreams(folder)) {
                let fm = FileManager.default
                if why == EEXIST { try? fm.removeItem(atPath: folder) }
                do { try fm.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
                    return .missingOutputs("cannot create \(folder): \(error.localizedDescription)")
                }
            }
        }
        do { try AttemptOutput.writeStreams(output, into: folder) } catch {
            return .missingOutputs("cannot write its results: \(error)")
        }
        return .done(files: 2, bytes: output.stdout.count + output.stderr.count)
    }

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

}

extension Coordinator {
    /// Finds inventory hosts whose agents report the same machine id (and boot id and host
    /// name, so clones of one image that kept its machine id stay apart) — one machine under
    /// two names (two addresses, or an alias) — and says so once per pair: a `host` audit event
    /// naming both, `hosts.same_machine_as` and the coordinator log. The later host in the
    /// inventory gets no jobs while the earlier one is up (see `schedule`): placing jobs on
    /// both would give the machine twice its slots.
    func noteSameMachines() throws {
        var first: [String: String] = [:]
        var found: [String: String] = [:]
        for h in inventory.hosts {
            guard let key = systemKeys[h.name] else { continue }
            if let earlier = first[key] { found[h.name] = earlier } else { first[key] = h.name }
        }
        guard found != sameMachineAs else { return }
        try journal.db.transaction {
            for h in inventory.hosts where found[h.name] != sameMachineAs[h.name] {
                try journal.setSameMachine(h.name, as: found[h.name])
                if let earlier = found[h.name] {
                    let m = machineIDs[h.name] ?? "?"
                    let text = "\(h.name) and \(earlier) are the same machine (machine id \(m.prefix(12))): jobs go to \(earlier) only, unless it is down; remove one of them from the inventory"
                    try journal.audit("host", host: h.name, state: "same_machine", text)
                    log("warning: " + text)
                } else if let was = sameMachineAs[h.name] {
                    try journal.audit("host", host: h.name, "\(h.name) is no longer the same machine as \(was)")
                }
            }
        }
        sameMachineAs = found
        dirty = true
    }

    /// What a heartbeat line says, as the journal records it.
    func beat(_ hb: JSONNode, host: String) -> Journal.Beat {
        Journal.Beat(time: hb["time"]?.doubleValue, seq: hb["seq"]?.intValue, version: hb["version"]?.stringValue,
                     build: hb["build"]?.stringValue, slots: inventory.host(named: host)?.slots ?? hb["cpus"]?.intValue,
                     machineID: hb["machine_id"]?.stringValue, coordinators: hb["coordinators"]?.arrayValue?.count,
                     load: HostLoad(heartbeat: hb))
    }

    /// Writes the routine beats received since the last flush, every host's in one transaction.
    func flushBeats() {
        beatsFlushAt = nil
        guard !pendingBeats.isEmpty else { return }
        let beats = pendingBeats
        do {
            try journal.db.transaction {
                for (host, b) in beats { try journal.recordHeartbeat(host, b) }
            }
            pendingBeats.removeAll()
        } catch {
            log("journal: recording heartbeats: \(error)")
            beatsFlushAt = now + Self.heartbeatRecordInterval
        }
    }
}
