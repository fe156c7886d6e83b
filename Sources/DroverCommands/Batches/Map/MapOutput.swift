import DroverCoordinator
import DroverCore
import Foundation

/// Prints each job's output as GNU parallel does: when the job is over, its stdout on stdout
/// and its stderr on stderr, one job's output together (`--group`); in input order with
/// `-k`; each line prefixed with `--tag`/`--tagstring`. The output printed is the results
/// folder's, which holds the attempt that concluded the job (one re-run after a host loss
/// prints once); files are copied in 64 KiB pieces, never held whole.
final class MapOutput {
    private let folder: String
    private let keepOrder: Bool
    private let tags: [String]?
    /// `--return`: copy each job's outputs from its results folder to the working directory.
    private let returns: Bool
    /// `-v`: each job's command line on stdout before its output.
    private let verbose: Bool
    private var printed: Set<String> = []
    /// Jobs whose output `--line-buffer` prints as it comes (their returned files are still copied here).
    var streamed: (String) -> Bool = { _ in false }
    /// `--results DIR --results-layout parallel`: DIR, and each job's values.
    var parallelResults: (dir: String, values: [[String]])?
    /// Jobs printed without their output, which was being streamed then.
    private var withheld: Set<String> = []
    /// With -k: the number of the next job to print.
    private var next = 1

    /// `tags[i]` is job `i+1`'s prefix (nil: no tagging).
    init(folder: String, keepOrder: Bool, tags: [String]?, returns: Bool, verbose: Bool = false) {
        self.verbose = verbose
        self.folder = folder
        self.keepOrder = keepOrder
        self.tags = tags
        self.returns = returns
    }

    /// Prints the jobs that are over and not printed yet (with -k: up to the first one not over).
    func printFinished(_ jobs: [JobRecord]) {
        if keepOrder {
            // Jobs not in this run (left out by a resume) hold nothing back.
            let byNumber = Dictionary(jobs.compactMap { j in j.batchJob.flatMap(Int.init).map { ($0, j) } }) { a, _ in a }
            let last = byNumber.keys.max() ?? 0
            while next <= last {
                if let j = byNumber[next] {
                    guard j.state.isFinal else { break }
                    emit(j.batchJob!, j)
                }
                next += 1
            }
            return
        }
        for j in jobs where j.state.isFinal { if let id = j.batchJob, !printed.contains(id) { emit(id, j) } }
    }

    private func emit(_ id: String, _ job: JobRecord) {
        printed.insert(id)
        let dir = folder + "/" + id
        let tag = tags.flatMap { t in Int(id).flatMap { t.indices.contains($0 - 1) ? t[$0 - 1] : nil } }
        if streamed(id) {
            withheld.insert(id)
        } else {
            if verbose { FileHandle.standardOutput.write(Data((job.request.commandLine + "\n").utf8)) }
            Self.copy(dir + "/stdout", to: 1, tag: tag)
            Self.copy(dir + "/stderr", to: 2, tag: tag)
        }
        if let p = parallelResults, let n = Int(id), p.values.indices.contains(n - 1) {
            Self.writeParallelResults(from: dir, to: p.dir, values: p.values[n - 1], seq: n)
        }
        for path in returns ? job.request.outputs ?? [] : [] {
            let source = dir + "/" + path
            guard LocalFile.exists(source) else { continue }
            let fm = FileManager.default
            try? fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try? fm.removeItem(atPath: path)
            do { try fm.copyItem(atPath: source, toPath: path) } catch {
                Terminal.error("--return \(path): cannot copy it from \(source): \(error.localizedDescription)")
            }
        }
    }

    /// parallel's `--results DIR` layout: `DIR/1/<value 1>/2/<value 2>/{stdout,stderr,seq}`,
    /// a value's `\\` written `\\\\` and its `/` written `\\_`, as parallel does.
    static func writeParallelResults(from source: String, to dir: String, values: [String], seq: Int) {
        let escaped = { (v: String) in v.replacing("\\", with: "\\\\").replacing("/", with: "\\_") }
        let path = ([dir] + values.enumerated().flatMap { [String($0.offset + 1), escaped($0.element)] }).joined(separator: "/")
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
            for name in ["stdout", "stderr"] {
                try? fm.removeItem(atPath: path + "/" + name)
                if fm.fileExists(atPath: source + "/" + name) { try fm.copyItem(atPath: source + "/" + name, toPath: path + "/" + name) } else {
                    try AtomicFile.write([], to: path + "/" + name, mode: 0o644)
                }
            }
            try AtomicFile.write(Array(String(seq).utf8), to: path + "/seq", mode: 0o644)
        } catch {
            Terminal.error("--results \(dir): cannot write \(path): \(error.localizedDescription)")
        }
    }

    /// Prints the output of jobs printed without it (`--line-buffer` streams that failed).
    func printOutput(of ids: [String]) {
        for id in ids where withheld.contains(id) {
            let tag = tags.flatMap { t in Int(id).flatMap { t.indices.contains($0 - 1) ? t[$0 - 1] : nil } }
            Self.copy(folder + "/" + id + "/stdout", to: 1, tag: tag)
            Self.copy(folder + "/" + id + "/stderr", to: 2, tag: tag)
        }
    }

    /// Copies a file to a descriptor, each line prefixed with `tag` and a tab when given.
    static func copy(_ path: String, to fd: Int32, tag: String?) {
        let input = open(path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { return }
        defer { close(input) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let prefix = tag.map { Array(($0 + "\t").utf8) }
        var atLineStart = true
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            guard let prefix else {
                writeAll(fd, buffer[0..<n])
                continue
            }
            var out: [UInt8] = []
            out.reserveCapacity(n + 64)
            for b in buffer[0..<n] {
                if atLineStart { out += prefix }
                out.append(b)
                atLineStart = b == UInt8(ascii: "\n")
            }
            writeAll(fd, out[...])
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) {
        var rest = bytes
        while !rest.isEmpty {
            let n = rest.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            rest = rest.dropFirst(n)
        }
    }
}
