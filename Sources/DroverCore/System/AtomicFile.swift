#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Crash-safe file replacement: write a temporary file, fsync it, rename it over the
/// target, then fsync the directory, so a reader sees either the old or the new content.
public enum AtomicFile {
    /// Replaces `path` with `bytes`, creating it with `mode` (0600 by default).
    ///
    /// With `durable: false` the fsyncs are skipped: the replacement is still atomic for
    /// readers and survives a crash of the process, but not a power loss.
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600, durable: Bool = true) throws(SystemError) {
        let dir = directory(of: path)
        let tmp = "\(dir)/.\(basename(of: path)).tmp.\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        if fd < 0 { throw SystemError.current("create", path: tmp) }
        do throws(SystemError) {
            try writeAll(fd, bytes, path: tmp)
            if fchmod(fd, mode) != 0 { throw SystemError.current("chmod", path: tmp) }
            if durable && fsync(fd) != 0 { throw SystemError.current("fsync", path: tmp) }
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        close(fd)
        if rename(tmp, path) != 0 {
            let e = SystemError.current("rename to \(path)", path: tmp)
            unlink(tmp)
            throw e
        }
        if durable { try syncDirectory(dir) }
    }

    /// fsyncs a directory so a rename or create in it survives a crash.
    public static func syncDirectory(_ dir: String) throws(SystemError) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw SystemError.current("open", path: dir) }
        defer { close(fd) }
        if fsync(fd) != 0 && currentErrno() != EINVAL { throw SystemError.current("fsync", path: dir) }
    }

    /// Writes every byte, retrying short writes and EINTR.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { posixWrite(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw SystemError.current("write", path: path)
            }
            offset += n
        }
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func basename(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}
