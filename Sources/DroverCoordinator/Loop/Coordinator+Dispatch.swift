import DroverCore
import DroverProtocol
import DroverInventory
import Foundation

/// What dispatch remembers between rounds: the cancels already sent (each is sent once per
/// attempt; reconciliation resends what a reconnect lost). Owned by `Coordinator+Dispatch`.
struct DispatchLedger {
    /// Attempts whose cancel was sent ("job/attempt").
    var cancelSent: Set<String> = []

    /// The job ended: its attempts' cancels need no remembering (the set would otherwise
    /// grow by one entry per cancelled job for the coordinator's life).
    mutating func forget(job: Int, through attempt: Int) {
        for n in 0...max(0, attempt) { cancelSent.remove("\(job)/\(n)") }
    }
}

extension Coordinator {
    /// The agent-side name of a job: `<coordinator id>-<job id>`.
    func agentJob(_ id: Int) -> String { "\(cid)-\(id)" }

    /// The job id in an agent-side name, when the job is ours.
    func jobID(fromAgentJob name: String) -> Int? {
        guard name.hasPrefix(cid + "-") else { return nil }
        return Int(name.dropFirst(cid.count + 1))
    }

    func slots(of host: HostSpec) -> Int {
        host.slots ?? roster.cpus[host.name] ?? 1
    }

    /// Places queued jobs on hosts that are `up`, writing each decision before sending it.
    func schedule() throws {
        // Hosts that take jobs (`HostRoster.takesJobs`); a quarantined host gets none either,
        // except one probe once its cool-down is over.
        try checkProbes()
        let usable = inventory.hosts.filter { h in roster.takesJobs(h.name) && placementLimit(h.name) != 0 }
        agenda.schedule = false
        guard !usable.isEmpty else { return }
        let used = try journal.hosts().reduce(into: [String: Int]()) { $0[$1.name] = $1.usedSlots }
        let gpusUsed = try journal.gpusInUse()
        let hosts = usable.map { SchedulerHost(name: $0.name, slots: slots(of: $0), used: used[$0.name] ?? 0, labels: placementLabels($0), limit: placementLimit($0.name),
                                               gpus: gpuCount($0), gpusUsed: gpusUsed[$0.name] ?? 0) }
        let free = hosts.reduce(0) { $0 + $1.free }
        guard free > 0 else { return }
        // A job whose cancel is pending is cancelled by handleRequests, never started.
        // A window of the queue: enough for label-bound jobs to let others past, small enough that a
        // round costs the same with 10 or 100,000 queued (each round reads it again).
        let queued = try journal.jobs(in: [.queued], readyAt: wallNow, limit: max(free * 8, 64)).filter { !$0.cancelRequested && !waitsForCheckpoint($0.id) }
        guard !queued.isEmpty else { return }
        var byID: [Int: JobRecord] = [:]
        for j in queued { byID[j.id] = j }
        // Retries prefer hosts where the job has not failed yet.
        let failedOn = try journal.failedHosts(of: queued.filter { $0.failures > 0 }.map(\.id))
        let placements = Scheduler.place(queued.map { schedulerJob($0, avoid: failedOn[$0.id] ?? [], prefer: restartHost($0)) }, on: hosts)
        try noteUnplaceable(queued, placed: Set(placements.map(\.job)))
        guard !placements.isEmpty else { return }
        var starts: [(host: String, start: HostLink.Outgoing)] = []
        // Input files are hashed before the write transaction, never while it holds the lock.
        var inputs: [Int: Result<[StagedFile], any Error>] = [:]
        for p in placements { if let job = byID[p.job] { inputs[job.id] = Result { try stagedInputs(job) } } }
        try journal.db.transaction {
            let t = wallNow
            var slotsTaken: [String: Set<Int>] = [:]
            for p in placements {
                guard let job = byID[p.job], let spec = inventory.host(named: p.host) else { continue }
                let files: [StagedFile]
                do { files = try inputs[job.id]?.get() ?? [] } catch {
                    try finish(job, .failed, reason: "inputs: \(error)")
                    continue
                }
                let n = job.attempt + 1
                var slot: Int?
                if job.request.fillsSlot == true {
                    if slotsTaken[p.host] == nil { slotsTaken[p.host] = try slotsInUse(on: p.host) }
                    let s = (1...).first { !slotsTaken[p.host]!.contains($0) }!
                    slotsTaken[p.host]!.insert(s)
                    slot = s
                }
                try journal.recordDispatch(job: job.id, attempt: n, host: p.host, slot: slot, at: t)
                if job.reason?.hasPrefix("waits: ") == true { try journal.setReason(job.id, nil) }
                try journal.audit("job", job: job.id, attempt: n, host: p.host, state: "dispatched", "job \(job.label) attempt \(n) dispatched to \(p.host)", time: t)
                if placementLimit(p.host) == 1 { try placedProbe(on: p.host, job: job.id, attempt: n, label: job.label) }
                try noteRestore(job, attempt: n, host: p.host)
                starts.append((p.host, startCommand(job, attempt: n, host: spec, slot: slot, files: files)))
            }
        }
        send(starts)
        // More may fit (the query was bounded).
        if placements.count == queued.count { agenda.schedule = true }
    }

    /// Hands start commands to their links (after the journal committed them); a link first
    /// stages the start's input files on its host.
    func send(_ starts: [(host: String, start: HostLink.Outgoing)]) {
        for (host, start) in starts { roster.links[host]?.send(start) }
    }

    /// The inbox command that starts an attempt (docs/state-format.md, "spec"), with the input
    /// files (`stagedInputs`) that must be on the host first.
    func startCommand(_ job: JobRecord, attempt: Int, host: HostSpec, slot: Int?, files: [StagedFile]) -> HostLink.Outgoing {
        let r = job.request
        let fill = { (words: [String]) in slot.map { MapTemplate.fillSlot(words, slot: $0) } ?? words }
        var spec = AttemptSpec(id: AttemptID(job: agentJob(job.id), attempt: attempt), argv: r.shell == nil ? fill(r.argv ?? []) : [],
                               shell: r.shell.map { fill([$0])[0] })
        spec.workdir = r.needsWorkdir
        spec.inputs = files.map { InputLink(path: $0.path, sha256: $0.sha256) }
        spec.cwd = r.cwd
        spec.env = host.env.merging(r.env) { _, job in job }.merging(restoredEnvironment(job)) { _, restored in restored }
        spec.checkpoint = r.checkpoint
        spec.gpus = gpuGrant(r, host: host)
        spec.timeout = r.timeout
        spec.lease = r.lease
        spec.keepRunning = r.keepRunning ?? false
        spec.memoryBytes = r.memoryBytes
        spec.coordinator = cid
        return HostLink.Outgoing(line: AgentCommand.start(spec).line, files: files, job: job.id, attempt: attempt)
    }

    func cancelCommand(job: Int, attempt: Int, reason: CancelReason) -> String {
        AgentCommand.cancel(job: agentJob(job), attempt: attempt, reason: reason).line
    }

    /// Cancels requested by `drover cancel`; new jobs make the queue dirty (and may be released
    /// from their dependencies, or be approvals done by `drover approve`).
    func handleRequests() throws {
        agenda.schedule = true
        agenda.dependents = true
        facts = nil  // `drover hosts --facts` may have collected newer ones
        agenda.sagas = true
        try loadBreakers()
        let ids = try journal.jobsToCancel()
        var outbox: [String: [String]] = [:]
        var sent: Set<String> = []
        try journal.db.transaction {
            for id in ids {
                guard let job = try journal.job(id) else { continue }
                if job.state == .queued || job.state == .waiting || job.state == .approval {
                    try finish(job, .cancelled, reason: cancelReason(job, otherwise: "cancelled before it started"))
                    continue
                }
                guard let host = job.host else { continue }
                if roster.hostState[host] == "down" || roster.hostState[host] == "untrusted" {
                    try finish(job, .cancelled, reason: "cancelled while \(host) is down: its attempt is killed when the host comes back (or by its agent when the lease expires)")
                    continue
                }
                let key = "\(id)/\(job.attempt)"
                if !dispatch.cancelSent.contains(key) {
                    sent.insert(key)
                    outbox[host, default: []].append(cancelCommand(job: id, attempt: job.attempt, reason: .cancelled))
                    try journal.audit("cancel_sent", job: id, attempt: job.attempt, host: host, "cancel sent to \(host)")
                }
            }
        }
        dispatch.cancelSent.formUnion(sent)
        flush(outbox)
    }

    /// Hands queued commands to the host links (after the journal committed the decisions).
    func flush(_ outbox: [String: [String]]) {
        for (host, lines) in outbox { roster.links[host]?.send(lines) }
    }
}
