#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Home directory, user name and path expansion for local paths.
///
/// No NSS: the agent is a fully static executable, where `getpwuid` cannot load the name
/// service modules, so the user's entry is read from `/etc/passwd` directly when needed.
public enum LocalUser {
    /// `$HOME`, or the user's entry in `/etc/passwd` when it is unset.
    public static var home: String {
        if let h = getenv("HOME"), h.pointee != 0 { return String(cString: h) }
        if let entry = PasswdFile.entry(uid: getuid()), !entry.home.isEmpty { return entry.home }
        return "/"
    }

    /// The login name of the current user: its `/etc/passwd` entry (by `getuid()`), else
    /// `$USER`/`$LOGNAME`, else the uid as a number.
    public static var name: String {
        if let entry = PasswdFile.entry(uid: getuid()) { return entry.name }
        if let u = environment("USER") ?? environment("LOGNAME") { return u }
        return String(getuid())
    }

    /// Expands a leading `~` or `~/` and `$HOME` / `${HOME}` in a local path.
    public static func expand(_ path: String, home: String = LocalUser.home) -> String {
        var p = path
        if p == "~" { return home }
        if p.hasPrefix("~/") { p = home + p.dropFirst(1) }
        guard p.utf8.contains(UInt8(ascii: "$")) else { return p }
        p = p.replacing("${HOME}", with: home)
        p = p.replacing("$HOME", with: home)
        return p
    }

    /// The environment variable `name`, or nil when unset or empty.
    public static func environment(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        let s = String(cString: v)
        return s.isEmpty ? nil : s
    }
}

/// `/etc/passwd` read as a file (name:password:uid:gid:gecos:home:shell), for what the
/// static agent would otherwise ask NSS. Users known only to a directory service (LDAP, …)
/// are not found; callers then fall back to the environment.
public enum PasswdFile {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var uid: UInt32
        public var home: String
    }

    /// The entry of `uid` in `path`, or nil.
    public static func entry(uid: uid_t, path: String = "/etc/passwd") -> Entry? {
        guard let bytes = try? LocalFile.read(path) else { return nil }
        return parse(String(decoding: bytes, as: UTF8.self)).first { $0.uid == UInt32(uid) }
    }

    /// Every well-formed line of a passwd file.
    public static func parse(_ text: String) -> [Entry] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 7, !f[0].isEmpty, !f[0].hasPrefix("#"), let uid = UInt32(f[2]) else { return nil }
            return Entry(name: String(f[0]), uid: uid, home: String(f[5]))
        }
    }
}

/// Small file helpers built on POSIX calls, with typed errors.
public enum LocalFile {
    /// Whether a path exists (following symlinks).
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// The size of a file in bytes (following symlinks), or nil when it cannot be read.
    public static func size(_ path: String) -> Int? {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : nil
    }

    /// Sets a file's access and modification times to now; false when it cannot.
    @discardableResult
    public static func touch(_ path: String) -> Bool {
        utimensat(AT_FDCWD, path, nil, 0) == 0
    }

    /// Whether a relative path stays inside the folder it is taken from: not empty, not
    /// absolute, no `..` component, no NUL.
    public static func staysInside(_ relativePath: String) -> Bool {
        guard !relativePath.isEmpty, !relativePath.hasPrefix("/"), !relativePath.utf8.contains(0) else { return false }
        return !relativePath.split(separator: "/").contains("..")
    }

    /// Whether a path is a regular file that this process may read.
    public static func isReadableFile(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return false }
        return access(path, R_OK) == 0
    }

    /// Reads a whole file.
    public static func read(_ path: String) throws(SystemError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw SystemError.current("open", path: path) }
        defer { close(fd) }
        return try readToEnd(fd, path: path)
    }

    /// Reads an open descriptor to its end (retrying on EINTR); `path` names it in errors.
    public static func readToEnd(_ fd: Int32, path: String) throws(SystemError) -> [UInt8] {
        var out = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw SystemError.current("read", path: path)
            }
            if n == 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return out
    }

    /// mkdir with mode 0700, creating missing parents; an existing directory is fine.
    /// Tries the full path first: on a hot path (a new attempt) that is one system call.
    public static func makeDirectories(_ path: String) throws(SystemError) {
        if mkdir(path, 0o700) == 0 || currentErrno() == EEXIST { return }
        guard currentErrno() == ENOENT, let slash = path.lastIndex(of: "/"), slash != path.startIndex else {
            throw SystemError.current("mkdir", path: path)
        }
        try makeDirectories(String(path[..<slash]))
        if mkdir(path, 0o700) != 0 && currentErrno() != EEXIST { throw SystemError.current("mkdir", path: path) }
    }

    /// The SHA-256 of a file, streamed in 64 KiB blocks.
    public static func sha256(_ path: String) throws(SystemError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw SystemError.current("open", path: path) }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw SystemError.current("read", path: path)
            }
            if n == 0 { break }
            hasher.update(buffer[0..<n])
        }
        return hexString(hasher.finalize())
    }
}
