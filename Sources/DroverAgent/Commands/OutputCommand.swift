import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `drover-agent output JOB/ATTEMPT [--follow] [--stdout-only | --stderr-only]`: copies the
/// attempt's `stdout` file to fd 1 and its `stderr` file to fd 2, from the beginning.
///
/// With `--follow` it waits for the attempt to exist, copies what the files gain as they grow,
/// and once the attempt is final (the shim records the end only after every process of the job
/// is gone, so nothing more is written) copies the rest and exits 0. Streams in chunks: the
/// files may be gigabytes. A closed output (the reader went away) ends it quietly with 0.
enum OutputCommand {
    static let chunkBytes = 256 << 10
    /// The longest `--follow` sleeps without a change of the files it watches (a safety net).
    static let safetySeconds = 1.0

    /// One output file being copied to one descriptor.
    final class Stream {
        let path: String
        let target: Int32
        var fd: Int32 = -1

        init(path: String, target: Int32) {
            self.path = path
            self.target = target
        }

        deinit { if fd >= 0 { close(fd) } }

        enum Progress { case caughtUp, more, readerGone }

        /// Copies up to `maxChunks` buffers of what the file has gained (so one busy file
        /// cannot starve the other). A file that does not exist yet (the job has not
        /// started) has nothing to copy.
        func copy(_ buffer: inout [UInt8], maxChunks: Int = 16) -> Progress {
            if fd < 0 {
                fd = open(path, O_RDONLY | O_CLOEXEC)
                if fd < 0 { return .caughtUp }
            }
            var chunks = 0
            while chunks < maxChunks {
                let n = buffer.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
                if n < 0 && currentErrno() == EINTR { continue }
                if n <= 0 { return .caughtUp }
                let ok = buffer.withUnsafeBytes { StreamIO.writeAll(target, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                if !ok { return .readerGone }
                chunks += 1
            }
            return .more
        }
    }

    static func run(_ options: inout Options) throws(AgentError) -> Int32 {
        try options.allow(["--follow", "--stdout-only", "--stderr-only"])
        let usage = "usage: drover-agent output JOB/ATTEMPT [--follow] [--stdout-only | --stderr-only]"
        guard options.positional.count == 1 else { throw .usage(usage) }
        guard let id = AttemptID(options.positional[0]) else { throw .usage("\"\(options.positional[0])\" is not JOB/ATTEMPT; \(usage)") }
        let stdoutOnly = options.flags.contains("--stdout-only"), stderrOnly = options.flags.contains("--stderr-only")
        if stdoutOnly && stderrOnly { throw .usage("--stdout-only and --stderr-only exclude each other") }
        let follow = options.flags.contains("--follow")
        let dir = options.root
        StreamIO.ignoreBrokenPipes()

        func state() -> AttemptState? { Transitions.currentState(dir.transitionsFile(id)) }
        // It sleeps until a file it follows changes (the attempt's folder appearing, its output
        // growing, its transitions), with a slow safety re-check.
        let watch = FileWatch.forAgent()
        func watchWhatExists() {
            for path in [dir.attempts, dir.attempts + "/" + id.job, dir.attemptDirectory(id), dir.transitionsFile(id), dir.stdoutFile(id), dir.stderrFile(id)]
            where !watch.isWatching(path) { watch.watch(path) }
        }
        var current = state()
        if current == nil {
            guard follow else { throw .invalid("no attempt \(id) in \(dir.root)") }
            while current == nil {
                watchWhatExists()
                current = state()
                if current == nil { _ = watch.wait(timeout: safetySeconds) }
            }
        }
        var streams: [Stream] = []
        if !stderrOnly { streams.append(Stream(path: dir.stdoutFile(id), target: 1)) }
        if !stdoutOnly { streams.append(Stream(path: dir.stderrFile(id), target: 2)) }
        var buffer = [UInt8](repeating: 0, count: chunkBytes)
        if follow { watchWhatExists() }  // before the first copy: nothing appended after it is missed
        while true {
            // The state is read before copying: once it is final, copying on reaches the real end.
            let final = !follow || current?.isFinal == true
            var more = false
            for s in streams {
                switch s.copy(&buffer) {
                case .readerGone: return 0
                case .more: more = true
                case .caughtUp: break
                }
            }
            if more { continue }
            if final { return 0 }
            watchWhatExists()
            if state() == current { _ = watch.wait(timeout: safetySeconds) }
            current = state()
        }
    }
}
