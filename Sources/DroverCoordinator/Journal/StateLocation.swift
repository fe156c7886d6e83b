import DroverCore
import Foundation

/// The coordinator's state directory: `--state`, else `$DROVER_STATE`, else
/// `$XDG_STATE_HOME/drover`, else `~/.local/state/drover`.
public struct StateLocation: Sendable, Equatable {
    public let path: String

    public init(explicit: String? = nil) {
        if let explicit, !explicit.isEmpty {
            path = Self.absolute(explicit)
        } else if let env = LocalUser.environment("DROVER_STATE"), !env.isEmpty {
            path = Self.absolute(env)
        } else if let xdg = LocalUser.environment("XDG_STATE_HOME"), !xdg.isEmpty {
            path = Self.absolute(xdg) + "/drover"
        } else {
            path = LocalUser.home + "/.local/state/drover"
        }
    }

    static func absolute(_ p: String) -> String {
        let expanded = LocalUser.expand(p)
        if expanded.hasPrefix("/") { return expanded }
        return FileManager.default.currentDirectoryPath + "/" + expanded
    }

    public var journalPath: String { path + "/journal.db" }
    public var lockPath: String { path + "/coordinator.lock" }
    public var logPath: String { path + "/coordinator.log" }
    /// The coordinator's doorbell: every other process touches it after each journal commit.
    public var wakePath: String { path + "/wake" }
    /// The coordinator's live heap of the moment (`{"pid":…,"time":…,"heap_in_use":bytes,"sqlite":bytes}`),
    /// rewritten with the routine heartbeats.
    public var heapPath: String { path + "/coordinator.heap" }

    /// Whether a journal exists here.
    public var exists: Bool { FileManager.default.fileExists(atPath: journalPath) }

    /// The files the coordinator keeps here (checked by `prepare` when present).
    public var stateFiles: [String] { [journalPath, journalPath + "-wal", journalPath + "-shm", lockPath, logPath, wakePath, heapPath] }

    /// Creates the directory (0700) when missing, and refuses (`UnsafeStateError`) a directory
    /// or state file that another user owns or may write, or a state file that is a symbolic
    /// link: the journal decides what runs on every host.
    public func prepare() throws {
        try LocalFile.makeDirectories(path)
        if let problem = PrivatePath.checkDirectory(path, followLink: true) {
            throw UnsafeStateError(directory: path, problem: problem)
        }
        if let problem = stateFiles.lazy.compactMap({ PrivatePath.checkFileIfPresent($0) }).first {
            throw UnsafeStateError(directory: path, problem: problem)
        }
    }

    /// The pid of the coordinator holding the lock, or nil when none runs.
    public func runningCoordinator() -> Int32? {
        PIDLock.holder(lockPath)
    }

    /// Takes the coordinator lock for the life of the process; nil when another holds it.
    public func lockForCoordinator() throws -> Int32? {
        try prepare()
        return try PIDLock.acquire(lockPath)
    }
}

/// The coordinator's state directory or one of its files is not this user's alone.
public struct UnsafeStateError: Error, Sendable, CustomStringConvertible {
    public var directory: String
    public var problem: PrivatePath.Problem

    public var description: String {
        "refusing the state directory \(directory): \(problem); the journal there decides what runs on your hosts, so no other user may own or write it"
    }
}
