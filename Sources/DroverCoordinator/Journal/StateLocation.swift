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
        var built = ""
        for part in path.split(separator: "/") {
            built += "/" + part
            if mkdir(built, 0o700) != 0 && currentErrno() != EEXIST {
                throw SystemError.current("create the state directory", path: built)
            }
        }
    }

    /// The pid of the coordinator holding the lock, or nil when none runs.
    public func runningCoordinator() -> Int32? {
        let fd = open(lockPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = read(fd, &buffer, 32)
        return n > 0 ? Int32(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1 : -1
    }

    /// Takes the coordinator lock for the life of the process; nil when another holds it.
    public func lockForCoordinator() throws -> Int32? {
        try prepare()
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError.current("open the coordinator lock", path: lockPath) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            return nil
        }
        ftruncate(fd, 0)
        let text = Array("\(getpid())\n".utf8)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return fd
    }
}
