#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One process per lock file: an flock held for the life of the process, with the holder's
/// pid written in the file so others can name (or signal) it. The agent and the coordinator
/// both use it.
public enum PIDLock {
    /// Takes the lock and writes this process's pid; nil when another process holds it.
    /// The returned descriptor must stay open for as long as the lock is held.
    public static func acquire(_ path: String) throws(SystemError) -> Int32? {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 { throw SystemError.current("open", path: path) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            return nil
        }
        ftruncate(fd, 0)
        let text = Array("\(getpid())\n".utf8)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return fd
    }

    /// The pid of the holder, nil when no process holds the lock, -1 when held by a pid that
    /// cannot be read.
    public static func holder(_ path: String) -> pid_t? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        guard let bytes = try? LocalFile.read(path) else { return -1 }
        let text = String(decoding: bytes, as: UTF8.self).filter { $0 != "\n" && $0 != " " }
        return pid_t(text) ?? -1
    }
}
