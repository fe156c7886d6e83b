import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Prepares where a job runs: its own folder when the spec asks for one, with its input files
/// linked in from the store (hard links to read-only files; a copy across file systems).
enum WorkingDirectory {
    /// The directory to start the job in (nil: the agent's own, i.e. the user's home).
    static func prepare(_ spec: AttemptSpec, dir: StateDirectory) throws(SystemError) -> String? {
        var cwd = spec.cwd
        if spec.workdir && spec.cwd == nil {
            let work = dir.workDirectory(spec.id)
            if mkdir(work, 0o700) != 0 && errno != EEXIST { throw SystemError.current("create the working directory", path: work) }
            cwd = work
        }
        guard !spec.inputs.isEmpty else { return cwd }
        let base = cwd.map { LocalUser.expand($0) } ?? LocalUser.home
        for input in spec.inputs {
            let source = dir.files + "/" + input.sha256
            let target = base + "/" + input.path
            if let slash = target.lastIndex(of: "/") { try LocalFile.makeDirectories(String(target[..<slash])) }
            unlink(target)
            if link(source, target) == 0 { continue }
            let linkErrno = errno
            if linkErrno == ENOENT && !LocalFile.exists(source) {
                throw SystemError("place input \(input.path): it is not in the store", path: source, errno: ENOENT)
            }
            // Another file system (or no hard links there): copy it.
            do {
                try AtomicFile.write(try LocalFile.read(source), to: target, mode: 0o400, durable: false)
            } catch {
                throw SystemError("copy input \(input.path) from the store", path: target, errno: error.errno)
            }
        }
        return cwd
    }
}
