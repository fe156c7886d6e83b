import DroverCore
import DroverProtocol
import Foundation

/// The results of ended attempts being fetched from their hosts, and the agent event
/// sequence each host may forget up to (`collectedSeq`). Owned by `Coordinator+Results`.
struct ResultCollection {
    /// Attempts whose results are being fetched ("job/attempt").
    var collecting: Set<String> = []
    /// The host and final-event sequence of each attempt in `collecting` (0: not known).
    var finalSeq: [String: (host: String, seq: Int)] = [:]
    /// The sequence of the agent event being applied (0 outside `receive`).
    var applyingSeq = 0
    /// Collections decided in the current transaction, handed to the links after it commits.
    var pending: [(host: String, collection: HostLink.Collection)] = []

    static func key(_ job: Int, _ attempt: Int) -> String { "\(job)/\(attempt)" }

    /// Whether the results of the attempt are being fetched.
    func isCollecting(job: Int, attempt: Int) -> Bool { collecting.contains(Self.key(job, attempt)) }

    /// Starts collecting an attempt whose final event is the one being applied; false when it is
    /// collected already.
    mutating func begin(job: Int, attempt: Int, host: String) -> Bool {
        let key = Self.key(job, attempt)
        guard collecting.insert(key).inserted else { return false }
        finalSeq[key] = (host, applyingSeq)
        return true
    }

    /// The attempt's results were fetched (or it was given up).
    mutating func end(job: Int, attempt: Int) {
        collecting.remove(Self.key(job, attempt))
    }

    /// The collections decided in the transaction that just committed.
    mutating func takePending() -> [(host: String, collection: HostLink.Collection)] {
        defer { pending.removeAll() }
        return pending
    }

    /// The transaction that decided the pending collections rolled back: none of them is under way.
    mutating func abandonPending() {
        for (_, c) in pending { end(job: c.job, attempt: c.attempt) }
        pending.removeAll()
    }

    /// `applied`, held below the final event of any attempt on `host` whose results are still
    /// being fetched (0 while one whose event is not known is: after a restart).
    mutating func collectedSeq(_ host: String, applied: Int) -> Int {
        finalSeq = finalSeq.filter { collecting.contains($0.key) }
        var mark = applied
        for (_, c) in finalSeq where c.host == host { mark = min(mark, max(0, c.seq - 1)) }
        return mark
    }
}

extension Coordinator {
    /// The applied sequence, held below the final event of any attempt on `host` whose results
    /// are still being fetched (0 while one whose event is not known is: after a restart).
    func collectedSeq(_ host: String) -> Int {
        results.collectedSeq(host, applied: roster.lastSeq[host] ?? 0)
    }

    /// What to fetch when an attempt of a batch job ended (nil: nothing, conclude at once).
    func collection(for job: JobRecord, attempt n: Int, state: String, host: String) -> HostLink.Collection? {
        guard let name = job.batch, ["exited", "signaled", "timed_out", "resource_limit", "cancelled"].contains(state),
              let batch = try? journal.batch(named: name), let spec = inventory.host(named: host) else { return nil }
        guard results.begin(job: job.id, attempt: n, host: host) else { return nil }
        let attemptDir = spec.root + "/attempts/" + agentJob(job.id) + "/" + String(n)
        let fetchOutputs = state == "exited" && (job.request.outputs ?? []).isEmpty == false
        return HostLink.Collection(job: job.id, attempt: n, attemptDirectory: attemptDir,
                                   workdir: job.request.cwd ?? attemptDir + "/work", outputs: fetchOutputs ? job.request.outputs ?? [] : [],
                                   destination: batch.folder + "/" + (job.batchJob ?? String(job.id)))
    }

    /// Hands the collections decided in the last transaction to their links.
    func flushCollections() {
        for (host, c) in results.takePending() { roster.links[host]?.collect(c) }
        flushPulls()
        pruneStoreIfDue()
    }

    /// A link fetched (or failed to fetch) an attempt's results.
    func collected(_ host: String, job id: Int, attempt n: Int, outcome: HostLink.CollectOutcome) {
        results.end(job: id, attempt: n)
        do {
            try journal.db.transaction {
                switch outcome {
                case .done(let files, let bytes):
                    try journal.audit("collected", job: id, attempt: n, host: host, "fetched \(files) file(s), \(bytes) bytes, of attempt \(n) from \(host)")
                    try conclude(id, attempt: n)
                case .missingOutputs(let problem):
                    try journal.audit("collected", job: id, attempt: n, host: host, "attempt \(n) on \(host): \(problem)")
                    try conclude(id, attempt: n, outputsProblem: problem)
                case .failed(let error):
                    // The link reconnects; reconciliation fetches again (or the host is declared down).
                    try journal.audit("collected", job: id, attempt: n, host: host, "fetching the results of attempt \(n) from \(host) failed: \(error); will retry")
                }
            }
        } catch {
            log("\(host): recording the results of job \(id): \(error)")
        }
        if case .failed = outcome { roster.links[host]?.restart() }
    }

    /// After a reconnect: attempts that ended while their results were not fetched yet.
    func recollect(_ host: String) throws {
        for (id, n, st) in try journal.endedUnconcluded(on: host) {
            guard let job = try journal.job(id) else { continue }
            if let c = collection(for: job, attempt: n, state: st, host: host) {
                roster.links[host]?.collect(c)
            } else if !results.isCollecting(job: id, attempt: n) {
                try journal.db.transaction { try conclude(id, attempt: n) }
            }
        }
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
}
