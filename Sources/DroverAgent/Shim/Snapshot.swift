import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Takes snapshots of an attempt's checkpoint files (docs/checkpoints.md).
///
/// A snapshot is the files matching the globs in the working directory (per path component,
/// symlinks never followed), copied into `checkpoints/K.tmp/files/`, with `manifest.json`,
/// then renamed to `checkpoints/K`. The rule against half-written files: each file is copied
/// through one open descriptor, and its size and modification time must be the same before
/// and after the copy, and the bytes read its size. A file that moved is a job writing it in
/// place: the whole round is given up and tried again (`busy`). A job that writes its state
/// to a temporary file and renames it over the old one is never caught mid-write: the copy
/// reads either the old file or the new one, whole.
struct Snapshotter {
    let globs: [[String]]
    let workdir: String
    /// `attempts/JOB/N/checkpoints`.
    let folder: String
    let job: String
    let attempt: Int
    /// Sizes and times of the files of the last snapshot taken (nothing changed: none taken).
    private var last: [String: FileStatus] = [:]
    private(set) var next = 1
    /// Snapshots kept on the host: the coordinator pulls the newest, the one before is its fallback.
    static let kept = 2

    enum Outcome: Equatable {
        case taken(Int)
        case unchanged
        /// A file changed while it was copied: try again soon.
        case busy(String)
        case failed(String)

        var isBusy: Bool { if case .busy = self { return true } else { return false } }
    }

    init(globs: [String], workdir: String, folder: String, job: String, attempt: Int) {
        self.globs = globs.map { $0.split(separator: "/").map(String.init) }
        self.workdir = workdir
        self.folder = folder
        self.job = job
        self.attempt = attempt
        next = (listDirectory(folder).compactMap(Int.init).max() ?? 0) + 1
    }

    /// Relative paths of the regular files that match a glob, sorted.
    func matchingFiles() -> [String] {
        var out: [String] = []
        walk(workdir, prefix: [], into: &out)
        return out.sorted()
    }

    private func walk(_ dir: String, prefix: [String], into out: inout [String]) {
        let depth = prefix.count
        for name in listDirectory(dir) {
            let here = globs.filter { $0.count > depth && Wildcard.matches($0[depth], name) && zip($0, prefix).allSatisfy { Wildcard.matches($0, $1) } }
            guard !here.isEmpty else { continue }
            var st = stat()
            guard lstat(dir + "/" + name, &st) == 0 else { continue }
            let type = st.st_mode & S_IFMT
            if type == S_IFREG, here.contains(where: { $0.count == depth + 1 }) {
                out.append((prefix + [name]).joined(separator: "/"))
            } else if type == S_IFDIR, here.contains(where: { $0.count > depth + 1 }) {
                walk(dir + "/" + name, prefix: prefix + [name], into: &out)
            }
        }
    }

    /// Takes a snapshot when a matching file changed since the last one.
    mutating func take(reason: String) -> Outcome {
        let paths = matchingFiles()
        var now: [String: FileStatus] = [:]
        for p in paths { now[p] = try? FileStatus.of(workdir + "/" + p) }
        if now == last { return .unchanged }
        let index = next
        let tmp = folder + "/\(index).tmp"
        DiskUsage.removeTree(tmp)
        var files: [CheckpointFile] = []
        var taken: [String: FileStatus] = [:]
        do throws(SystemError) {
            try LocalFile.makeDirectories(tmp + "/files")
            for p in paths {
                guard let (file, status) = try copy(p, into: tmp + "/files") else {
                    DiskUsage.removeTree(tmp)
                    return .busy(p)
                }
                files.append(file)
                taken[p] = status
            }
            let manifest = CheckpointEvent(job: job, attempt: attempt, index: index, takenAt: wallTime(), reason: reason, files: files)
            try AtomicFile.write(Array((manifest.jsonObject.text + "\n").utf8), to: tmp + "/manifest.json", durable: false)
            guard rename(tmp, folder + "/\(index)") == 0 else { throw SystemError.current("rename", path: tmp) }
        } catch {
            DiskUsage.removeTree(tmp)
            return .failed(error.description)
        }
        last = taken
        next = index + 1
        for old in listDirectory(folder).compactMap(Int.init) where old <= index - Self.kept { DiskUsage.removeTree(folder + "/\(old)") }
        return .taken(index)
    }

    /// Copies one file, hashing it; nil when it changed during the copy.
    private func copy(_ rel: String, into dest: String) throws(SystemError) -> (CheckpointFile, FileStatus)? {
        let source = workdir + "/" + rel
        let fd = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }  // renamed away between the listing and the copy
            throw SystemError.current("open", path: source)
        }
        defer { close(fd) }
        let before = try FileStatus.of(descriptor: fd, path: source)
        let target = dest + "/" + rel
        if let slash = target.lastIndex(of: "/") { try LocalFile.makeDirectories(String(target[..<slash])) }
        let out = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard out >= 0 else { throw SystemError.current("create", path: target) }
        defer { close(out) }
        var hash = SHA256()
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        // Never more than the size seen first: a file that grows is caught below, and a copy
        // of one that grows without end must not fill the disk.
        while Int64(total) < before.size {
            let want = Int(min(Int64(buffer.count), before.size - Int64(total)))
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, want) }
            if n < 0 { if errno == EINTR { continue }; throw SystemError.current("read", path: source) }
            if n == 0 { break }
            hash.update(buffer[0..<n])
            try AtomicFile.writeAll(out, Array(buffer[0..<n]), path: target)
            total += n
        }
        let after = try FileStatus.of(descriptor: fd, path: source)
        guard after == before, Int64(total) == before.size else { return nil }
        return (CheckpointFile(path: rel, size: total, sha256: hexString(hash.finalize())), before)
    }
}
