import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The agent's state directory and the names inside it (docs/state-format.md, version 1).
public struct StateDirectory: Sendable {
    public static let formatVersion = 1
    public let root: String

    public init(root: String) {
        var r = LocalUser.expand(root)
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
    }

    public var lockFile: String { root + "/agent.lock" }
    public var heartbeatFile: String { root + "/heartbeat" }
    /// The lease of a coordinator that writes the single legacy `lease` file.
    public var leaseFile: String { root + "/lease" }
    /// One lease per coordinator: `leases/<coordinator id>`.
    public var leases: String { root + "/leases" }
    public func leaseFile(coordinator: String) -> String { leases + "/" + coordinator }
    /// Which machine runs this state directory's agent (`owner.json`).
    public var ownerFile: String { root + "/owner.json" }
    /// The event log being appended to; closed segments are `events.<first seq>.log` (`EventSegments`).
    public var eventLog: String { root + "/events.log" }
    /// The retention policy the coordinator passed on the link (`RetentionPolicy`).
    public var retentionFile: String { root + "/retention.json" }
    public var inbox: String { root + "/inbox" }
    public var rejected: String { root + "/inbox/rejected" }
    public var attempts: String { root + "/attempts" }
    public var agentLog: String { root + "/agent.log" }
    public var stopRequest: String { root + "/stop" }
    /// Input files by content: `files/<sha256>`, uploaded once per host by the coordinator.
    public var files: String { root + "/files" }

    public func attemptDirectory(_ id: AttemptID) -> String { "\(attempts)/\(id.job)/\(id.attempt)" }
    public func specFile(_ id: AttemptID) -> String { attemptDirectory(id) + "/spec.json" }
    public func transitionsFile(_ id: AttemptID) -> String { attemptDirectory(id) + "/transitions" }
    public func resultFile(_ id: AttemptID) -> String { attemptDirectory(id) + "/result.json" }
    public func stdoutFile(_ id: AttemptID) -> String { attemptDirectory(id) + "/stdout" }
    public func stderrFile(_ id: AttemptID) -> String { attemptDirectory(id) + "/stderr" }
    public func cancelFile(_ id: AttemptID) -> String { attemptDirectory(id) + "/cancel" }
    /// The attempt's own working directory, for specs with `workdir`.
    public func workDirectory(_ id: AttemptID) -> String { attemptDirectory(id) + "/work" }
    /// Snapshots of the attempt's checkpoint files (`checkpoints/1`, `2`, …; docs/checkpoints.md).
    public func checkpointsDirectory(_ id: AttemptID) -> String { attemptDirectory(id) + "/checkpoints" }

    /// The cookie every process of an attempt carries in its environment, as
    /// `DROVER_COOKIE=<root id>/<job>/<attempt>`; the root id keeps agents of different roots apart.
    public var cookiePrefix: String { "DROVER_COOKIE=" + String(hexString(SHA256.hash(Array(root.utf8))).prefix(12)) + "/" }
    public func cookie(_ id: AttemptID) -> String { cookiePrefix + id.description }

    /// The folders the agent keeps (created 0700 by `prepare`).
    public var folders: [String] { [root, inbox, rejected, attempts, files, leases] }
    /// The agent's own top-level files (checked by `prepare` when present).
    public var stateFiles: [String] { [lockFile, heartbeatFile, leaseFile, eventLog, agentLog, stopRequest, ownerFile, retentionFile] }
    /// Where `drover deploy` puts agent binaries (checked when present).
    public var binaries: String { root + "/bin" }

    /// Creates the root and its folders 0700, and refuses a root, folder or state file that
    /// another user owns or may write (or a folder or file that is a symbolic link; the root
    /// itself may be one), as sshd's StrictModes would: another user could otherwise place
    /// commands in the inbox or change what the agent reads.
    public func prepare() throws(AgentError) {
        // The root first: nothing is created inside a root that is refused.
        try Self.makeDirectory(root)
        if let problem = PrivatePath.checkDirectory(root, followLink: true) { throw refusal(problem, more: []) }
        for dir in folders.dropFirst() {
            try Self.makeDirectory(dir)
        }
        var problems = folders.dropFirst().compactMap { PrivatePath.checkDirectory($0) }
        if LocalFile.exists(binaries), let p = PrivatePath.checkDirectory(binaries) { problems.append(p) }
        problems += stateFiles.compactMap { PrivatePath.checkFileIfPresent($0) }
        if let first = problems.first { throw refusal(first, more: Array(problems.dropFirst())) }
    }

    private func refusal(_ problem: PrivatePath.Problem, more: [PrivatePath.Problem]) -> AgentError {
        let others = more.isEmpty ? "" : " (also: \(more.compactMap(\.path).joined(separator: ", ")))"
        return .unsafe("refusing the state directory \(root): \(problem)\(others); the agent runs only from a root that no other user can write, as sshd's StrictModes does")
    }

    /// mkdir with mode 0700, creating missing parents (`LocalFile.makeDirectories`).
    public static func makeDirectory(_ path: String) throws(AgentError) {
        do { try LocalFile.makeDirectories(path) } catch { throw .system(error) }
    }
}

/// Why the agent could not do something: one clear line with the path and errno.
public enum AgentError: Error, Sendable, CustomStringConvertible {
    case system(SystemError)
    case unsafe(String)
    /// The state directory belongs to an agent of another live machine (shared home).
    case foreignOwner(String)
    case usage(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .system(let e): return e.description
        case .unsafe(let m), .foreignOwner(let m), .usage(let m), .invalid(let m): return m
        }
    }
}

/// Wall-clock time as seconds since the epoch, with microseconds.
public func wallTime() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec / 1000) / 1e6
}

/// Monotonic seconds, for intervals and deadlines.
public func monotonicTime() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Reads a small JSON file; nil when it is missing or does not parse.
func readJSON(_ path: String) -> JSONNode? {
    guard let bytes = try? LocalFile.read(path) else { return nil }
    return try? JSONParser.parse(bytes)
}

/// Appends a line to a file, and fsyncs it when `durable`.
func appendLine(_ line: String, to path: String, durable: Bool = true) throws(SystemError) {
    let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    if fd < 0 { throw SystemError.current("open", path: path) }
    defer { close(fd) }
    try AtomicFile.writeAll(fd, Array((line + "\n").utf8), path: path)
    if durable && fsync(fd) != 0 { throw SystemError.current("fsync", path: path) }
}

/// Creates or truncates a file and writes it, without fsync (for files not yet referenced).
func writeFile(_ bytes: [UInt8], to path: String) throws(SystemError) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    if fd < 0 { throw SystemError.current("create", path: path) }
    defer { close(fd) }
    try AtomicFile.writeAll(fd, bytes, path: path)
}
