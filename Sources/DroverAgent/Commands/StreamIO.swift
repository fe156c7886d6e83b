import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Output for the streaming commands (`tail --follow`, `output`), whose reader is usually the
/// coordinator at the other end of an SSH channel and may go away at any time.
enum StreamIO {
    /// A write to a closed pipe must fail with EPIPE (so the command can exit 0) rather than
    /// kill the process with SIGPIPE.
    static func ignoreBrokenPipes() {
        signal(SIGPIPE, SIG_IGN)
    }

    /// Writes every byte (one `write` call unless the kernel takes fewer); false when the
    /// reader is gone or the write fails otherwise.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var written = 0
        while written < bytes.count {
            let n = posixWrite(fd, bytes.baseAddress! + written, bytes.count - written)
            if n < 0 && currentErrno() == EINTR { continue }
            if n <= 0 { return false }
            written += n
        }
        return true
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { writeAll(fd, $0) }
    }
}
