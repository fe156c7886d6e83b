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

/// Hashes of local files staged as inputs, by path, reused while size and mtime are the same.
/// Owned by `Coordinator+Staging`.
struct InputHashes {
    var byPath: [String: HashedFile] = [:]

    /// A local file's SHA-256, from the cache when the file did not change.
    mutating func hash(_ path: String) throws -> String {
        let st: FileStatus
        do { st = try FileStatus.of(path) } catch { throw StagingError("cannot read \(path): \(error)") }
        if let h = byPath[path], h.size == st.size, h.mtime == st.modified { return h.sha256 }
        let sha = try LocalFile.sha256(path)
        byPath[path] = HashedFile(size: st.size, mtime: st.modified, sha256: sha)
        return sha
    }
}

extension Coordinator {
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
                    out.append(StagedFile(sha256: try hashes.hash(folder + "/" + rel), localPath: folder + "/" + rel, path: dest))
                }
            }
        }
        return out + restoredFiles(job)
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
}

struct StagingError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
