import DroverCore
import Foundation

/// A local file to place on a host before an attempt starts.
struct StagedFile: Sendable, Equatable {
    /// Content hash: the file's name in the host's store (`ROOT/files/<sha256>`).
    var sha256: String
    var localPath: String
    /// Where it goes, relative to the attempt's working directory.
    var path: String
}

/// A local file's hash, valid while its size and modification time stay the same.
struct HashedFile {
    var size: Int64
    var mtime: Double
    var sha256: String
}

extension Coordinator {
    // MARK: Inputs

    /// The files an attempt of `job` needs on its host: local inputs as hashed at submission,
    /// and the fetched outputs of upstream jobs (`from`), hashed now.
    func stagedInputs(_ job: JobRecord) throws -> [StagedFile] {
        guard let inputs = job.request.inputs, !inputs.isEmpty else { return restoredFiles(job) }
        var out: [StagedFile] = []
        for input in inputs {
            guard let pattern = input.from else {
                out.append(StagedFile(sha256: input.sha256 ?? "", localPath: input.source, path: input.path))
                continue
            }
            guard let name = job.batch, let batch = try journal.batch(named: name) else { throw StagingError("\(job.label) is not in a batch") }
            let upstream = (job.request.after ?? []).map(\.job).filter { Wildcard.matches(pattern, $0) }
            for dep in upstream {
                let folder = batch.folder + "/" + dep
                let files = LocalFolder.files(under: folder).filter { Wildcard.matches(input.source, $0) }
                guard !files.isEmpty else {
                    throw StagingError("\(input.source) from \(dep): no such file in \(folder) (is it in \(dep)'s `outputs`?)")
                }
                for rel in files {
                    let dest = (input.path.isEmpty ? dep : input.path + "/" + dep) + "/" + rel
                    out.append(StagedFile(sha256: try hash(folder + "/" + rel), localPath: folder + "/" + rel, path: dest))
                }
            }
        }
        return out + restoredFiles(job)
    }

    /// A local file's SHA-256, cached by size and modification time.
    func hash(_ path: String) throws -> String {
        let st: FileStatus
        do { st = try FileStatus.of(path) } catch { throw StagingError("cannot read \(path): \(error)") }
        if let h = hashCache[path], h.size == st.size, h.mtime == st.modified { return h.sha256 }
        let sha = try LocalFile.sha256(path)
        hashCache[path] = HashedFile(size: st.size, mtime: st.modified, sha256: sha)
        return sha
    }

    /// Slot numbers (`{%}`) held by live attempts on a host.
    func slotsInUse(on host: String) throws -> Set<Int> {
        try journal.slotsInUse(on: host)
    }

    func stagingFailed(_ host: String, job id: Int, attempt n: Int, error: String) {
        do {
            try journal.db.transaction {
                try journal.markStartFailed(job: id, attempt: n, reason: "inputs: \(error)", at: wallNow)
                try journal.audit("attempt", job: id, attempt: n, host: host, state: "start_failed", "attempt \(n) of job \(id) on \(host): inputs could not be staged: \(error)")
                try conclude(id, attempt: n)
            }
        } catch {
            log("\(host): recording a staging failure of job \(id): \(error)")
        }
    }

    func staged(_ host: String, files: [StagedFile], bytes: Int) {
        let names = files.map(\.path).prefix(3).joined(separator: ", ")
        try? journal.audit("staged", host: host, "\(files.count) input file(s) (\(bytes) bytes) uploaded to \(host): \(names)\(files.count > 3 ? ", …" : "") [\(files.map { String($0.sha256.prefix(12)) }.joined(separator: " "))]")
    }

    // MARK: Results

    /// The applied sequence, held below the final event of any attempt on `host` whose results
    /// are still being fetched (0 while one whose event is not known is: after a restart).
    func collectedSeq(_ host: String) -> Int {
        collectingSeq = collectingSeq.filter { collecting.contains($0.key) }
        var mark = roster.lastSeq[host] ?? 0
        for (_, c) in collectingSeq where c.host == host { mark = min(mark, max(0, c.seq - 1)) }
        return mark
    }

    /// What to fetch when an attempt of a batch job ended (nil: nothing, conclude at once).
    func collection(for job: JobRecord, attempt n: Int, state: String, host: String) -> HostLink.Collection? {
        guard let name = job.batch, ["exited", "signaled", "timed_out", "resource_limit", "cancelled"].contains(state),
              let batch = try? journal.batch(named: name), let spec = inventory.host(named: host) else { return nil }
        let key = "\(job.id)/\(n)"
        guard !collecting.contains(key) else { return nil }
        collecting.insert(key)
        collectingSeq[key] = (host, applyingSeq)
        let attemptDir = spec.root + "/attempts/" + agentJob(job.id) + "/" + String(n)
        let fetchOutputs = state == "exited" && (job.request.outputs ?? []).isEmpty == false
        return HostLink.Collection(job: job.id, attempt: n, attemptDirectory: attemptDir,
                                   workdir: job.request.cwd ?? attemptDir + "/work", outputs: fetchOutputs ? job.request.outputs ?? [] : [],
                                   destination: batch.folder + "/" + (job.batchJob ?? String(job.id)))
    }

    /// Hands the collections decided in the last transaction to their links.
    func flushCollections() {
        for (host, c) in pendingCollections { roster.links[host]?.collect(c) }
        pendingCollections.removeAll()
        flushPulls()
        pruneStoreIfDue()
    }

    /// A link fetched (or failed to fetch) an attempt's results.
    func collected(_ host: String, job id: Int, attempt n: Int, outcome: HostLink.CollectOutcome) {
        collecting.remove("\(id)/\(n)")
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
            } else if !collecting.contains("\(id)/\(n)") {
                try journal.db.transaction { try conclude(id, attempt: n) }
            }
        }
    }
}

struct StagingError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
