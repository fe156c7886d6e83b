import CLibSSH2
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Facts about a remote file from SFTP `stat`.
public struct RemoteFileInfo: Sendable, Equatable {
    public var size: UInt64
    /// Permission bits (e.g. 0o644).
    public var permissions: UInt32
    public var isDirectory: Bool
    public var isRegularFile: Bool
    public var modificationTime: UInt64
}

/// What an SFTP request does.
enum SFTPRequest {
    case stat(String)
    case mkdir(String, mode: Int)
    case unlink(String)
    /// Upload from a local file or from memory to a remote path, created with `mode`.
    case upload(source: UploadSource, to: String, mode: Int)
    /// Download a remote file into memory (refusing more than `limit` bytes) or into a local file.
    case download(String, destination: DownloadDestination)
}

enum UploadSource {
    case file(String)
    case bytes([UInt8])
}

enum DownloadDestination {
    case memory(limit: Int)
    case file(String)
}

enum SFTPResult: Sendable {
    case none
    case info(RemoteFileInfo)
    case bytes([UInt8])
}

private let LIBSSH2_FXF_READ: UInt = 0x01
private let LIBSSH2_FXF_WRITE: UInt = 0x02
private let LIBSSH2_FXF_CREAT: UInt = 0x08
private let LIBSSH2_FXF_TRUNC: UInt = 0x10
private let transferChunk = 256 * 1024

/// One SFTP request driven in non-blocking steps; SFTP requests run one at a time per connection.
final class SFTPOperation: LoopOperation, CustomStringConvertible {
    private enum Phase { case starting, opening, transferring, syncing, closing }

    private let request: SFTPRequest
    private let continuation: CheckedContinuation<SFTPResult, any Error>
    private let idleTimeout: Duration
    private(set) var deadline: ContinuousClock.Instant?
    private var phase = Phase.starting
    private var handle: OpaquePointer?
    private var localFD: Int32 = -1
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private var sourceOffset = 0
    private var localEOF = false
    private var received: [UInt8] = []
    private var readBuffer = [CChar]()
    private var result = SFTPResult.none
    private var finished = false

    init(_ request: SFTPRequest, idleTimeout: Double, continuation: CheckedContinuation<SFTPResult, any Error>) {
        self.request = request
        self.continuation = continuation
        self.idleTimeout = .milliseconds(Int(idleTimeout * 1000))
        self.deadline = ContinuousClock.now + self.idleTimeout
    }

    deinit { if localFD >= 0 { close(localFD) } }

    var exclusive: ExclusiveResource? { .sftp }
    var throttled: Bool { false }

    var description: String {
        switch request {
        case .stat(let p): return "stat \(p)"
        case .mkdir(let p, _): return "mkdir \(p)"
        case .unlink(let p): return "remove \(p)"
        case .upload(_, let p, _): return "upload to \(p)"
        case .download(let p, _): return "download \(p)"
        }
    }

    func timeOut(loop: SessionLoop) -> Bool {
        false  // SFTP state lives in the session: the loop closes the connection and fails us
    }

    func fail(_ error: SSHError, loop: SessionLoop) {
        guard !finished else { return }
        finished = true
        if localFD >= 0 { close(localFD); localFD = -1 }
        if case .download(_, .file(let path)) = request { unlink(path + ".drover-partial") }
        continuation.resume(throwing: error)
    }

    private func succeed() {
        guard !finished else { return }
        finished = true
        continuation.resume(returning: result)
    }

    private func touched() { deadline = ContinuousClock.now + idleTimeout }

    func step(_ loop: SessionLoop) throws(SSHError) -> Step {
        guard let session = loop.session else { throw loop.error(.closed, description, "the connection is closed") }
        if loop.sftp == nil {
            guard let s = libssh2_sftp_init(session) else {
                if libssh2_session_last_errno(session) == LIBSSH2_ERROR_EAGAIN { return .waiting }
                let e = loop.lastError("start SFTP", fallback: .sftpFailed)
                if e.kind == .connectionLost || e.kind == .timedOut { throw e }
                throw loop.error(.sftpFailed, "start SFTP", "the server offers no SFTP subsystem (\(e.message)); add `Subsystem sftp internal-sftp` to its sshd_config")
            }
            loop.sftp = s
            touched()
            return .progressed
        }
        let sftp = loop.sftp!
        let step = try advance(loop, session: session, sftp: sftp)
        if step != .waiting { touched() }
        if step == .done { succeed() }
        return step
    }

    private func advance(_ loop: SessionLoop, session: OpaquePointer, sftp: OpaquePointer) throws(SSHError) -> Step {
        switch request {
        case .stat(let path):
            var attrs = LIBSSH2_SFTP_ATTRIBUTES()
            let p = sftpPath(path)
            let rc = libssh2_sftp_stat_ex(sftp, p, UInt32(p.utf8.count), LIBSSH2_SFTP_STAT, &attrs)
            if rc == LIBSSH2_ERROR_EAGAIN { return .waiting }
            if rc != 0 { throw sftpError(loop, sftp, rc) }
            let mode = UInt32(attrs.permissions)
            result = .info(RemoteFileInfo(
                size: UInt64(attrs.filesize), permissions: mode & 0o7777,
                isDirectory: mode & 0o170000 == 0o040000, isRegularFile: mode & 0o170000 == 0o100000,
                modificationTime: UInt64(attrs.mtime)))
            return .done
        case .mkdir(let path, let mode):
            let p = sftpPath(path)
            let rc = libssh2_sftp_mkdir_ex(sftp, p, UInt32(p.utf8.count), mode)
            if rc == LIBSSH2_ERROR_EAGAIN { return .waiting }
            if rc != 0 { throw sftpError(loop, sftp, rc) }
            return .done
        case .unlink(let path):
            let p = sftpPath(path)
            let rc = libssh2_sftp_unlink_ex(sftp, p, UInt32(p.utf8.count))
            if rc == LIBSSH2_ERROR_EAGAIN { return .waiting }
            if rc != 0 { throw sftpError(loop, sftp, rc) }
            return .done
        case .upload(let source, let path, let mode):
            return try upload(loop, sftp: sftp, source: source, path: path, mode: mode)
        case .download(let path, let destination):
            return try download(loop, sftp: sftp, path: path, destination: destination)
        }
    }

    private func open(_ loop: SessionLoop, _ sftp: OpaquePointer, _ path: String, flags: UInt, mode: Int) throws(SSHError) -> Step {
        let p = sftpPath(path)
        guard let h = libssh2_sftp_open_ex(sftp, p, UInt32(p.utf8.count), flags, mode, 0) else {
            if libssh2_session_last_errno(loop.session) == LIBSSH2_ERROR_EAGAIN { return .waiting }
            throw sftpError(loop, sftp, libssh2_session_last_errno(loop.session))
        }
        handle = h
        phase = .transferring
        return .progressed
    }

    private func closeHandle(_ loop: SessionLoop, _ sftp: OpaquePointer) throws(SSHError) -> Step {
        let rc = libssh2_sftp_close_handle(handle)
        if rc == LIBSSH2_ERROR_EAGAIN { return .waiting }
        handle = nil
        if rc != 0 { throw sftpError(loop, sftp, rc) }
        return .done
    }

    private func upload(_ loop: SessionLoop, sftp: OpaquePointer, source: UploadSource, path: String, mode: Int) throws(SSHError) -> Step {
        switch phase {
        case .starting:
            if case .file(let local) = source {
                localFD = Glibc.open(local, O_RDONLY | O_CLOEXEC)
                if localFD < 0 { throw loop.error(.localIO, description, SystemError.current("open", path: local).description) }
            }
            phase = .opening
            return .progressed
        case .opening:
            return try open(loop, sftp, path, flags: LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC, mode: mode)
        case .transferring:
            if pendingOffset >= pending.count {
                if !refill(loop, source: source) { phase = .syncing; return .progressed }
            }
            let n = pending.withUnsafeBytes { raw in
                libssh2_sftp_write(handle, raw.baseAddress!.assumingMemoryBound(to: CChar.self) + pendingOffset, pending.count - pendingOffset)
            }
            if n == Int(LIBSSH2_ERROR_EAGAIN) { return .waiting }
            if n < 0 { throw sftpError(loop, sftp, Int32(n)) }
            pendingOffset += n
            return .progressed
        case .syncing:
            let rc = libssh2_sftp_fsync(handle)
            if rc == LIBSSH2_ERROR_EAGAIN { return .waiting }
            // Servers without fsync@openssh.com answer "unsupported": the data is still written.
            phase = .closing
            return .progressed
        case .closing:
            return try closeHandle(loop, sftp)
        }
    }

    /// Loads the next chunk to send; false at the end of the source.
    private func refill(_ loop: SessionLoop, source: UploadSource) -> Bool {
        switch source {
        case .bytes(let all):
            guard sourceOffset < all.count else { return false }
            let end = min(all.count, sourceOffset + transferChunk)
            pending = Array(all[sourceOffset..<end])
            sourceOffset = end
        case .file:
            if localEOF { return false }
            pending = [UInt8](repeating: 0, count: transferChunk)
            let n = pending.withUnsafeMutableBytes { posixRead(localFD, $0.baseAddress, transferChunk) }
            if n <= 0 { localEOF = true; return false }
            pending.removeLast(transferChunk - n)
        }
        pendingOffset = 0
        return true
    }

    private func download(_ loop: SessionLoop, sftp: OpaquePointer, path: String, destination: DownloadDestination) throws(SSHError) -> Step {
        switch phase {
        case .starting:
            if case .file(let local) = destination {
                localFD = Glibc.open(local + ".drover-partial", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                if localFD < 0 { throw loop.error(.localIO, description, SystemError.current("create", path: local + ".drover-partial").description) }
            }
            readBuffer = [CChar](repeating: 0, count: transferChunk)
            phase = .opening
            return .progressed
        case .opening:
            return try open(loop, sftp, path, flags: LIBSSH2_FXF_READ, mode: 0)
        case .transferring:
            let n = readBuffer.withUnsafeMutableBufferPointer { libssh2_sftp_read(handle, $0.baseAddress, transferChunk) }
            if n == Int(LIBSSH2_ERROR_EAGAIN) { return .waiting }
            if n < 0 { throw sftpError(loop, sftp, Int32(n)) }
            if n == 0 { phase = .closing; return .progressed }
            switch destination {
            case .memory(let limit):
                if received.count + n > limit {
                    throw loop.error(.sftpFailed, description, "the file is larger than the \(limit)-byte limit for reading into memory")
                }
                received += readBuffer.withUnsafeBytes { Array($0[0..<n]) }
            case .file(let local):
                do {
                    try AtomicFile.writeAll(localFD, readBuffer.withUnsafeBytes { Array($0[0..<n]) }, path: local)
                } catch {
                    throw loop.error(.localIO, description, error.description)
                }
            }
            return .progressed
        case .syncing, .closing:
            let step = try closeHandle(loop, sftp)
            guard step == .done else { return step }
            switch destination {
            case .memory:
                result = .bytes(received)
            case .file(let local):
                if fsync(localFD) != 0 || close(localFD) != 0 {
                    localFD = -1
                    throw loop.error(.localIO, description, SystemError.current("write", path: local).description)
                }
                localFD = -1
                if rename(local + ".drover-partial", local) != 0 {
                    throw loop.error(.localIO, description, SystemError.current("rename", path: local).description)
                }
            }
            return .done
        }
    }

    private func sftpError(_ loop: SessionLoop, _ sftp: OpaquePointer, _ rc: Int32) -> SSHError {
        guard rc == LIBSSH2_ERROR_SFTP_PROTOCOL else { return loop.lastError(description, fallback: .sftpFailed) }
        let code = libssh2_sftp_last_error(sftp)
        switch code {
        case 2, 10: return loop.error(.noSuchFile, description, "no such file or directory", code: Int32(code))
        case 3: return loop.error(.sftpFailed, description, "permission denied", code: Int32(code))
        case 11: return loop.error(.sftpFailed, description, "the file already exists", code: Int32(code))
        case 14, 15: return loop.error(.sftpFailed, description, "no space left on the remote disk (or quota exceeded)", code: Int32(code))
        case 4: return loop.error(.sftpFailed, description, "the server reported a failure (for mkdir: it may already exist)", code: Int32(code))
        default: return loop.error(.sftpFailed, description, "SFTP status \(code)", code: Int32(code))
        }
    }
}

/// SFTP paths are relative to the login directory, so `~/x` and `$HOME/x` become `x`.
func sftpPath(_ path: String) -> String {
    if path == "~" || path == "$HOME" { return "." }
    if path.hasPrefix("~/") { return String(path.dropFirst(2)) }
    if path.hasPrefix("$HOME/") { return String(path.dropFirst(6)) }
    return path
}
