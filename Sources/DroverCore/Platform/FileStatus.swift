#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Size and modification time of a local file, the same on Linux and macOS (whose `stat`
/// fields differ in name: see the `+Linux` and `+Darwin` files).
public struct FileStatus: Sendable, Equatable {
    public var size: Int64
    /// Seconds since the epoch, with the file system's sub-second precision.
    public var modified: Double

    /// The status of `path` (following links), or a `SystemError` naming it.
    public static func of(_ path: String) throws(SystemError) -> FileStatus {
        var st = stat()
        guard stat(path, &st) == 0 else { throw SystemError.current("stat", path: path) }
        return FileStatus(size: Int64(st.st_size), modified: modificationTime(st))
    }

    /// The status of an open file (the file itself, whatever its path now names).
    public static func of(descriptor fd: Int32, path: String) throws(SystemError) -> FileStatus {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemError.current("fstat", path: path) }
        return FileStatus(size: Int64(st.st_size), modified: modificationTime(st))
    }
}
