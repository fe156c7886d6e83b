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

    /// Whether a journal exists here.
    public var exists: Bool { FileManager.default.fileExists(atPath: journalPath) }

    /// Creates the directory (0700) when missing.
    public func prepare() throws {
        try LocalFile.makeDirectories(path)
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
