import DroverCore
import DroverProtocol
import Foundation

/// Checkpoint/restart (docs/checkpoints.md): snapshots reported by agents are pulled into the
/// coordinator's store, the newest of each job is recorded, and a job that runs again gets it
/// staged into its working directory.
///
/// The snapshots being pulled, and whether the store has files to remove. Owned by
/// `Coordinator+Checkpoints`.
struct CheckpointPulls {
    /// Pulls decided in the current transaction, handed to the links after it commits.
    var pending: [(host: String, pull: CheckpointPull)] = []
    /// Jobs with pulls under way: the host, and how many.
    var pulling: [Int: (host: String, count: Int)] = [:]
    /// A snapshot was replaced or its job succeeded: the store has files to remove.
    var storePruneDue = true

    /// A pull decided (inside a transaction): pending until it commits, under way from now.
    mutating func add(_ pull: CheckpointPull, host: String) {
        pending.append((host, pull))
        pulling[pull.job, default: (host, 0)].count += 1
    }

    /// The pulls decided in the transaction that just committed.
    mutating func takePending() -> [(host: String, pull: CheckpointPull)] {
        defer { pending.removeAll() }
        return pending
    }

    /// The transaction that decided the pending pulls rolled back: none of them is under way
    /// (the events are applied again, and decide them again).
    mutating func abandonPending() {
        for (_, p) in takePending() { ended(job: p.job) }
    }

    /// A pull of `job` ended (stored or failed).
    mutating func ended(job: Int) {
        guard let c = pulling[job] else { return }
        pulling[job] = c.count > 1 ? (c.host, c.count - 1) : nil
    }

    /// The host a pull of `job` is under way from, if any.
    func host(pulling job: Int) -> String? { pulling[job]?.host }
}

extension Coordinator {
    /// An agent reported a snapshot (inside the caller's transaction): audit it and pull it
    /// once the transaction commits (`flushCollections`).
    func checkpointTaken(_ c: CheckpointEvent, host: String, time: Double) throws {
        guard let id = jobID(fromAgentJob: c.job), let a = try journal.attempt(id, c.attempt), a.host == host else { return }
        try journal.audit("checkpoint", job: id, attempt: c.attempt, host: host,
                          "snapshot \(c.index) of attempt \(c.attempt) of job \(id) taken on \(host) (\(c.reason)): \(c.files.count) file(s), \(c.bytes) bytes", time: time)
        guard !c.files.isEmpty, let spec = inventory.host(named: host) else { return }
        let folder = spec.root + "/attempts/" + c.job + "/" + String(c.attempt) + "/checkpoints/" + String(c.index) + "/files"
        checkpoints.add(CheckpointPull(job: id, event: c, remoteFolder: folder, store: journal.checkpointStore), host: host)
    }

    /// Hands the pulls decided in the last transaction to their links.
    func flushPulls() {
        for (host, p) in checkpoints.takePending() { roster.links[host]?.pull(p) }
    }

    func pulledCheckpoint(_ host: String, pull p: CheckpointPull, error: String?) {
        checkpoints.ended(job: p.job)
        let c = p.event
        do {
            try journal.db.transaction {
                if let error {
                    try journal.audit("checkpoint", job: p.job, attempt: c.attempt, host: host, "snapshot \(c.index) of attempt \(c.attempt) could not be pulled from \(host): \(error)")
                } else if try journal.recordCheckpoint(job: p.job, host: host, c, storedAt: wallNow) {
                    try journal.audit("checkpoint", job: p.job, attempt: c.attempt, host: host, "snapshot \(c.index) of attempt \(c.attempt) stored (\(c.files.count) file(s), \(c.bytes) bytes); the job restarts from it")
                    checkpoints.storePruneDue = true
                }
            }
        } catch {
            log("\(host): recording a checkpoint of job \(p.job): \(error)")
        }
        pruneStoreIfDue()
        agenda.schedule = true
    }

    /// Removes store files that no kept snapshot names any more (a newer snapshot replaced
    /// theirs, or their job succeeded), after the transaction that made them unnamed.
    func pruneStoreIfDue() {
        guard checkpoints.storePruneDue else { return }
        checkpoints.storePruneDue = false
        do {
            let p = try journal.pruneCheckpointStore(now: wallNow)
            if p.files > 0 { log("checkpoint store: removed \(p.files) file(s) no snapshot names (\(p.bytes) bytes)") }
        } catch {
            log("checkpoint store: pruning: \(error)")
        }
    }

    /// Whether a queued job waits for a snapshot still being pulled from a host that is up.
    func waitsForCheckpoint(_ job: Int) -> Bool {
        guard let host = checkpoints.host(pulling: job) else { return false }
        return roster.hostState[host] == "up"
    }

    /// The newest snapshot's files, to stage into the working directory of the job's next attempt.
    func restoredFiles(_ job: JobRecord) -> [StagedFile] {
        guard job.request.checkpoint != nil, let c = try? journal.checkpoint(of: job.id) else { return [] }
        return c.files.map { StagedFile(sha256: $0.sha256, localPath: journal.checkpointStore + "/" + $0.sha256, path: $0.path) }
    }

    /// What the job is told of a restored snapshot (`DROVER_CHECKPOINT=restored`, its time and attempt).
    func restoredEnvironment(_ job: JobRecord) -> [String: String] {
        guard job.request.checkpoint != nil, let c = try? journal.checkpoint(of: job.id) else { return [:] }
        return ["DROVER_CHECKPOINT": "restored", "DROVER_CHECKPOINT_TIME": JSONText.number(c.takenAt), "DROVER_CHECKPOINT_ATTEMPT": String(c.attempt)]
    }

    /// Audits that attempt `n` starts from the job's newest snapshot (inside the dispatch transaction).
    func noteRestore(_ job: JobRecord, attempt n: Int, host: String) throws {
        guard job.request.checkpoint != nil, let c = try journal.checkpoint(of: job.id) else { return }
        try journal.audit("checkpoint", job: job.id, attempt: n, host: host, state: "restored",
                          "attempt \(n) of job \(job.label) on \(host) starts from snapshot \(c.index) of attempt \(c.attempt) (\(c.files.count) file(s), \(c.bytes) bytes, taken \(Int(wallNow - c.takenAt)) s ago)")
    }

    /// The host a job goes back to: the one it left with its checkpoint exit code ("restart me").
    func restartHost(_ job: JobRecord) -> String? {
        guard let code = job.request.checkpoint?.exitCode, job.exitCode == code, job.attempt > 0,
              let last = try? journal.attempt(job.id, job.attempt), last.exitCode == code else { return nil }
        return last.host
    }

    /// The job exited with its `checkpoint.exit_code` ("I saved, restart me"): queued again at
    /// once, counting neither a failure nor a retry; it waits for the end's snapshot to be pulled.
    func restartFromCheckpoint(_ job: JobRecord, attempt n: Int, host: String) throws {
        try journal.requeueAtOnce(job.id)
        try journal.audit("job", job: job.id, attempt: n, host: host, state: "queued",
                          "job \(job.label) exited \(job.request.checkpoint?.exitCode ?? 0) (its checkpoint exit code) on \(host): restarting it from its snapshot (not counted as a failure)")
        agenda.schedule = true
    }
}
