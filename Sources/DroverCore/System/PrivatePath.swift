#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Ownership and permission checks for the folders and files Drover keeps its state in, in
/// the spirit of sshd's StrictModes: only this user may own them or write to them, and a
/// command file is never followed through a symbolic link. The agent and the coordinator
/// both use it.
public enum PrivatePath {
    /// What is wrong with a path, and what to do about it (one line).
    public enum Problem: Error, Sendable, Equatable, CustomStringConvertible {
        /// Owned by another user (`uid`), not by this process's effective user.
        case foreignOwner(path: String, uid: UInt32, isDirectory: Bool)
        /// Writable by group or others (`mode` is the permission bits).
        case writableByOthers(path: String, mode: UInt32, isDirectory: Bool)
        case symbolicLink(path: String)
        /// Not the kind expected (a directory where a file is expected, a FIFO, …).
        case wrongKind(path: String, expected: String)
        case system(SystemError)

        public var path: String? {
            switch self {
            case .foreignOwner(let p, _, _), .writableByOthers(let p, _, _), .symbolicLink(let p), .wrongKind(let p, _): return p
            case .system(let e): return e.path
            }
        }

        public var description: String {
            switch self {
            case .foreignOwner(let path, let uid, let isDirectory):
                let me = geteuid()
                return "\(path) belongs to uid \(uid), not to this user (uid \(me)), so another user controls it; "
                    + "give it back with `chown \(me) \(ShellQuote.quote(path))` (as root) or \(isDirectory ? "use a directory" : "remove it and use a file") you own"
            case .writableByOthers(let path, let mode, let isDirectory):
                return "\(path) is writable by group or others (mode \(String(mode & 0o7777, radix: 8))), so another user could change it; "
                    + "run `chmod \(isDirectory ? "700" : "600") \(ShellQuote.quote(path))`"
            case .symbolicLink(let path):
                return "\(path) is a symbolic link; Drover does not follow links there: replace it with the \(path.hasSuffix(".json") ? "file" : "directory") itself"
            case .wrongKind(let path, let expected):
                return "\(path) is not \(expected)"
            case .system(let e):
                return e.description
            }
        }
    }

    /// Checks a directory: it exists, is a directory, belongs to this user and is not writable
    /// by group or others. `followLink`: a symbolic link to such a directory is accepted (for a
    /// root the user chose, e.g. `~/.drover` → `/data/drover`); otherwise a link is refused.
    public static func checkDirectory(_ path: String, followLink: Bool = false) -> Problem? {
        var st = stat()
        if lstat(path, &st) != 0 { return .system(.current("stat", path: path)) }
        if (st.st_mode & S_IFMT) == S_IFLNK {
            guard followLink else { return .symbolicLink(path: path) }
            if stat(path, &st) != 0 { return .system(.current("stat", path: path)) }
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { return .wrongKind(path: path, expected: "a directory") }
        return check(path, st, isDirectory: true)
    }

    /// Checks a file that may be missing (nil then): not a link, a regular file, this user's,
    /// not writable by group or others.
    public static func checkFileIfPresent(_ path: String) -> Problem? {
        var st = stat()
        if lstat(path, &st) != 0 {
            return currentErrno() == ENOENT ? nil : .system(.current("stat", path: path))
        }
        if (st.st_mode & S_IFMT) == S_IFLNK { return .symbolicLink(path: path) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .wrongKind(path: path, expected: "a regular file") }
        return check(path, st, isDirectory: false)
    }

    /// Reads a whole file that must be this user's own: opened without following a link
    /// (`O_NOFOLLOW`), then checked on the open descriptor (`fstat`), so what is read is what
    /// was checked.
    public static func readOwnFile(_ path: String) throws(Problem) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            let e = currentErrno()
            if e == ELOOP { throw .symbolicLink(path: path) }
            throw .system(SystemError("open", path: path, errno: e))
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw .system(.current("stat", path: path)) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .wrongKind(path: path, expected: "a regular file") }
        if let problem = check(path, st, isDirectory: false) { throw problem }
        do { return try LocalFile.readToEnd(fd, path: path) } catch { throw .system(error) }
    }

    private static func check(_ path: String, _ st: stat, isDirectory: Bool) -> Problem? {
        if st.st_uid != geteuid() { return .foreignOwner(path: path, uid: UInt32(st.st_uid), isDirectory: isDirectory) }
        if st.st_mode & 0o022 != 0 { return .writableByOthers(path: path, mode: UInt32(st.st_mode & 0o7777), isDirectory: isDirectory) }
        return nil
    }
}
