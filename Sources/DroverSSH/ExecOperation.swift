import CLibSSH2
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let channelWindowSize: UInt32 = 2 * 1024 * 1024
let channelPacketSize: UInt32 = 32768
private let readChunk = 256 * 1024

/// Runs one command on an exec channel, streaming stdout and stderr into an `ExecOutputBuffer`.
final class ExecOperation: LoopOperation, CustomStringConvertible {
    private enum Phase { case opening, starting, writingStdin, sendingEOF, reading, closing, waitingClosed, freeing }

    private let command: String
    /// Only open and close a channel: one network round trip, no remote process.
    private let openOnly: Bool
    private let stdin: [UInt8]?
    private var stdinOffset = 0
    /// Stdin written while the command runs (a long-lived channel); EOF once it is closed.
    private let input: StreamInput?
    private var inputEnded = false
    let output: ExecOutputBuffer
    private var phase = Phase.opening
    private var channel: OpaquePointer?
    private var status: ExitStatus?
    /// Set when the caller no longer wants the result (cancelled or timed out): close quietly.
    private var abandoned = false
    private let openDeadline: ContinuousClock.Instant
    private let runDeadline: ContinuousClock.Instant?
    private var buffer = [CChar](repeating: 0, count: readChunk)
    /// What the login shell's start-up files print before the command runs is dropped.
    private var stdoutFilter = PreambleFilter()
    private var stderrFilter = PreambleFilter()

    init(command: String, stdin: [UInt8]?, input: StreamInput? = nil, openTimeout: Double, timeout: Double?, output: ExecOutputBuffer, openOnly: Bool = false) {
        self.command = command
        self.openOnly = openOnly
        self.stdin = stdin
        self.input = input
        self.output = output
        self.openDeadline = ContinuousClock.now + .milliseconds(Int(openTimeout * 1000))
        self.runDeadline = timeout.map { ContinuousClock.now + .milliseconds(Int($0 * 1000)) }
    }

    var description: String { openOnly ? "channel open" : "run `\(command.prefix(60))`" }

    var exclusive: ExclusiveResource? { phase == .opening ? .channelOpen : nil }
    var throttled: Bool { phase == .reading && !abandoned && output.isFull && !output.isCancelled }

    var deadline: ContinuousClock.Instant? {
        if abandoned { return nil }
        if phase == .opening { return openDeadline }
        return runDeadline
    }

    func timeOut(loop: SessionLoop) -> Bool {
        if phase == .opening { return false }  // the session's channel-open state is mid-way
        let limit = runDeadline.map { _ in "its time limit" } ?? "the time limit"
        output.finish(loop.error(.timedOut, "run `\(command.prefix(80))`", "the command did not finish within \(limit); its channel was closed"))
        abandoned = true
        if phase != .waitingClosed && phase != .freeing { phase = .closing }
        return true
    }

    func fail(_ error: SSHError, loop: SessionLoop) {
        output.finish(error)
    }

    func step(_ loop: SessionLoop) throws(SSHError) -> Step {
        guard let session = loop.session else { throw loop.error(.closed, "run command", "the connection is closed") }
        if output.isCancelled && !abandoned {
            abandoned = true
            if phase == .opening { /* finish opening first: its state lives in the session */ } else if phase != .waitingClosed && phase != .freeing { phase = .closing }
        }
        switch phase {
        case .opening:
            guard let ch = libssh2_channel_open_ex(session, "session", 7, channelWindowSize, channelPacketSize, nil, 0) else {
                if libssh2_session_last_errno(session) == LIBSSH2_ERROR_EAGAIN { return .waiting }
                throw loop.lastError("open a channel", fallback: .channelFailed)
            }
            channel = ch
            if openOnly { status = .exited(0); phase = .freeing; return .progressed }
            phase = abandoned ? .closing : .starting
            return .progressed
        case .starting:
            let request = RemoteCommand.wrap(command)
            let rc = libssh2_channel_process_startup(channel, "exec", 4, request, UInt32(request.utf8.count))
            if rc == LIBSSH2_ERROR_EAGAIN { return .waiting }
            if rc != 0 { throw loop.lastError("start `\(command.prefix(80))`", fallback: .channelFailed) }
            phase = stdin != nil ? .writingStdin : (input != nil ? .reading : .sendingEOF)
            return .progressed
        case .writingStdin:
            guard let data = stdin, stdinOffset < data.count else {
                phase = .sendingEOF
                return .progressed
            }
            let n = data.withUnsafeBytes { raw in
                libssh2_channel_write_ex(channel, 0, raw.baseAddress!.assumingMemoryBound(to: CChar.self) + stdinOffset, data.count - stdinOffset)
            }
            if n == Int(LIBSSH2_ERROR_EAGAIN) { return .waiting }
            if n < 0 { throw loop.lastError("write stdin", fallback: .channelFailed) }
            stdinOffset += n
            return .progressed
        case .sendingEOF:
            let rc = libssh2_channel_send_eof(channel)
            if rc == LIBSSH2_ERROR_EAGAIN { return .waiting }
            if rc != 0 { throw loop.lastError("send EOF", fallback: .channelFailed) }
            phase = .reading
            return .progressed
        case .reading:
            return try read(loop)
        case .closing:
            let rc = libssh2_channel_close(channel)
            if rc == LIBSSH2_ERROR_EAGAIN { return .waiting }
            phase = (abandoned || rc != 0) ? .freeing : .waitingClosed
            return .progressed
        case .waitingClosed:
            let rc = libssh2_channel_wait_closed(channel)
            if rc == LIBSSH2_ERROR_EAGAIN { return .waiting }
            collectExitStatus(session)
            phase = .freeing
            return .progressed
        case .freeing:
            let rc = libssh2_channel_free(channel)
            if rc == LIBSSH2_ERROR_EAGAIN { return .waiting }
            channel = nil
            if !abandoned {
                if openOnly || stdoutFilter.found {
                    if !stderrFilter.found && !stderrFilter.unframed.isEmpty { output.push(.stderr(stderrFilter.unframed)) }
                    output.push(.exit(status ?? .exited(-1)))
                    output.finish()
                } else {
                    output.finish(loginShellError(loop))
                }
            } else {
                output.finish()
            }
            return .done
        }
    }

    /// Reads whatever stdout and stderr hold, stopping when the consumer's buffer is full.
    private func read(_ loop: SessionLoop) throws(SSHError) -> Step {
        var progressed = try writeInput(loop)
        for stream: Int32 in [1, 0] {
            while !output.isFull {
                let n = buffer.withUnsafeMutableBufferPointer { libssh2_channel_read_ex(channel, stream, $0.baseAddress, readChunk) }
                if n == Int(LIBSSH2_ERROR_EAGAIN) || n == 0 { break }
                if n < 0 { throw loop.lastError("read output", fallback: .connectionLost) }
                deliver(stream, buffer.withUnsafeBytes { Array($0[0..<n]) })
                progressed = true
            }
        }
        if !progressed && libssh2_channel_eof(channel) != 0 && !output.isFull {
            // EOF is final only when a read of each stream after it yields nothing.
            for stream: Int32 in [1, 0] {
                let n = buffer.withUnsafeMutableBufferPointer { libssh2_channel_read_ex(channel, stream, $0.baseAddress, readChunk) }
                if n > 0 {
                    deliver(stream, buffer.withUnsafeBytes { Array($0[0..<n]) })
                    return .progressed
                }
            }
            phase = .closing
            return .progressed
        }
        return progressed ? .progressed : .waiting
    }

    /// Writes what the input holds (the same bytes again after EAGAIN, as libssh2 requires),
    /// then EOF once it is closed and written; true when something went out.
    private func writeInput(_ loop: SessionLoop) throws(SSHError) -> Bool {
        guard let input, !inputEnded else { return false }
        let (bytes, ended) = input.peek(limit: 32 * 1024)
        if !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { raw in
                libssh2_channel_write_ex(channel, 0, raw.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
            }
            if n == Int(LIBSSH2_ERROR_EAGAIN) { return false }
            if n < 0 { throw loop.lastError("write stdin", fallback: .channelFailed) }
            input.consume(n)
            return true
        }
        guard ended else { return false }
        let rc = libssh2_channel_send_eof(channel)
        if rc == LIBSSH2_ERROR_EAGAIN { return false }
        if rc != 0 { throw loop.lastError("send EOF", fallback: .channelFailed) }
        inputEnded = true
        return true
    }

    /// Passes the command's own bytes on; what came before the marker is dropped.
    private func deliver(_ stream: Int32, _ bytes: [UInt8]) {
        if stream == 0 {
            let own = stdoutFilter.feed(bytes)
            if !own.isEmpty { output.push(.stdout(own)) }
        } else {
            let own = stderrFilter.feed(bytes)
            if !own.isEmpty { output.push(.stderr(own)) }
        }
    }

    /// The channel ended without the marker: the login shell never ran Drover's command.
    private func loginShellError(_ loop: SessionLoop) -> SSHError {
        let printed = (stdoutFilter.unframed + stderrFilter.unframed)
        var text = String(decoding: printed, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.count > 400 { text = String(text.prefix(400)) + "…" }
        return loop.error(.loginShell, "run `\(command.prefix(60))`",
            "the login shell of \(loop.target.user) did not run the command (\(status ?? .exited(-1))\(text.isEmpty ? ", no output" : "; it printed: \(text)")); "
            + "check that the user's shell exists and that its start-up files do not exit")
    }

    private func collectExitStatus(_ session: OpaquePointer) {
        var name: UnsafeMutablePointer<CChar>?
        var nameLength = 0
        libssh2_channel_get_exit_signal(channel, &name, &nameLength, nil, nil, nil, nil)
        if let name, nameLength > 0 {
            status = .signaled(String(cString: name))
            libssh2_free(session, name)
        } else {
            status = .exited(libssh2_channel_get_exit_status(channel))
        }
    }
}
