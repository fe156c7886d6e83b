import DroverCoordinator

/// What the API's actions do, given by the command layer so that they check and word things
/// exactly as `drover submit`, `cancel`, `retry` and `approve` do.
public protocol WebActions: Sendable {
    /// Queues one job from the words `drover submit` takes (options, `--`, the command); its id.
    func submitJob(arguments: [String]) async throws(WebActionError) -> Int
    /// Queues a batch file's content (`file` names it in messages; `arguments` are `drover
    /// submit`'s batch options); the batch's name, the job ids by batch job id and the kept count.
    func submitBatch(content: [UInt8], file: String, arguments: [String]) async throws(WebActionError) -> BatchSubmitted
    /// Asks for jobs to be cancelled (ids or names); the ids it was recorded for.
    func cancel(_ jobs: [String]) async throws(WebActionError) -> [Int]
    /// Re-drives failed jobs (ids, names or batches) as `drover retry` does; what became of each.
    func retry(_ jobs: [String], resetBudget: Bool) async throws(WebActionError) -> [RedriveOutcome]
    /// Opens an approval gate (`BATCH/JOB`).
    func approve(_ gate: String) async throws(WebActionError) -> JobRecord
    /// An attempt's output: the kept copy, or what its host prints (`follow`: until it ends).
    func output(job: Int, attempt: Int, follow: Bool) -> AsyncThrowingStream<OutputChunk, any Error>
}

/// A batch the API queued.
public struct BatchSubmitted: Sendable, Encodable {
    public var batch: String
    public var jobs: [String: Int]
    public var kept: Int
    public init(batch: String, jobs: [String: Int], kept: Int) {
        self.batch = batch
        self.jobs = jobs
        self.kept = kept
    }
}

/// Bytes of an attempt's output.
public enum OutputChunk: Sendable {
    case stdout([UInt8])
    case stderr([UInt8])
}

/// An action refused: the HTTP status and the message the CLI prints for the same input.
public struct WebActionError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public init(status: Int, message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { message }
}
