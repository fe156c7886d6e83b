import DroverInventory

/// A batch as read from a batch file (or built by `drover map`): a name, a policy and jobs.
public struct BatchSpec: Sendable {
    public var name: String
    /// Cancel the rest on the first job that fails for good (`--fail-fast`).
    public var failFast: Bool
    /// Jobs in file order.
    public var jobs: [BatchJob]
    /// The file it was read from ("-" for none).
    public var file: String
    /// `compensate-on-failure`: when the batch fails for good, the compensations of the jobs
    /// that succeeded run in reverse dependency order.
    public var compensateOnFailure: Bool
    /// Where this batch's notifications go (besides the inventory's).
    public var notify: [NotifyTarget]

    public init(name: String, failFast: Bool = false, jobs: [BatchJob], file: String = "-", compensateOnFailure: Bool = false, notify: [NotifyTarget] = []) {
        self.name = name
        self.failFast = failFast
        self.jobs = jobs
        self.file = file
        self.compensateOnFailure = compensateOnFailure
        self.notify = notify
    }
}

/// One job of a batch: its id in the batch and the request.
public struct BatchJob: Sendable {
    public var id: String
    public var request: JobRequest
    /// Where the job is in the file, for messages (`jobs[3]`).
    public var path: String

    public init(id: String, request: JobRequest, path: String) {
        self.id = id
        self.request = request
        self.path = path
    }

    public var dependencies: [Dependency] { request.after ?? [] }
}

/// A dependency on another job of the batch, with Slurm's conditions.
public struct Dependency: Codable, Sendable, Equatable {
    public enum Condition: String, Codable, Sendable, CaseIterable {
        /// The job succeeded (Slurm `afterok`), the default.
        case ok
        /// The job ended, whatever the outcome (`afterany`).
        case any
        /// The job failed (`afternotok`): for clean-up or notification stages.
        case failed
    }

    public var job: String
    public var condition: Condition

    public init(job: String, condition: Condition = .ok) {
        self.job = job
        self.condition = condition
    }

    /// Whether a dependency in `state` lets the dependent run: true, false (never will), nil (not yet).
    public func satisfied(by state: JobState) -> Bool? {
        guard state.isFinal else { return nil }
        switch condition {
        case .ok: return state == .succeeded
        case .any: return true
        case .failed: return state == .failed
        }
    }
}

/// A file placed in a job's working directory before it starts.
public struct InputFile: Codable, Sendable, Equatable {
    /// An absolute local file; or, with `from`, a path or glob inside the upstream job's results folder.
    public var source: String
    /// Where it goes, relative to the working directory (with `from`: a folder, the job id by default).
    public var path: String
    /// An upstream job of the same batch whose fetched outputs are the source.
    public var from: String?
    /// The content hash at submission (local files; used to notice a changed spec on resume).
    public var sha256: String?
    /// File mode bits to keep (executable or not).
    public var mode: Int?

    public init(source: String, path: String, from: String? = nil, sha256: String? = nil, mode: Int? = nil) {
        self.source = source
        self.path = path
        self.from = from
        self.sha256 = sha256
        self.mode = mode
    }
}

/// Names that become folder names (batch names, job ids): letters, digits, `.`, `_`, `-`;
/// not starting with `.` or `-`; at most 100 characters. No `/`, so never a path.
public enum BatchNames {
    public static func isValid(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 100, let first = name.utf8.first,
              first != UInt8(ascii: "."), first != UInt8(ascii: "-") else { return false }
        return name.utf8.allSatisfy { b in
            (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 46 || b == 95 || b == 45
        }
    }

    public static let rule = "letters, digits, '.', '_' and '-' (not first), at most 100 characters"
}
