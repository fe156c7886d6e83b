import DroverCore
import DroverProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small outputs of single jobs' attempts, as they came inline with the end event:
/// `STATE/outputs/<job>/<attempt>/stdout` and `stderr` (0600). `drover run` and `drover logs`
/// print them from here, with no connection to the host.
public enum AttemptOutput {
    /// The folder of one attempt's output.
    public static func folder(state: StateLocation, job: Int, attempt: Int) -> String {
        "\(state.path)/outputs/\(job)/\(attempt)"
    }

    /// Writes both streams (a rewrite after a replayed event gives the same files).
    static func store(_ output: InlineOutput, state: StateLocation, job: Int, attempt: Int) {
        let dir = folder(state: state, job: job, attempt: attempt)
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try writeStreams(output, into: dir)
        } catch {
            // Not fatal: the output is still on the host, where `drover logs` reads it.
        }
    }

    /// Whether `folder` holds nothing but (possibly) `stdout` and `stderr` (one directory read).
    static func holdsOnlyStreams(_ folder: String) -> Bool {
        guard let d = opendir(folder) else { return false }
        defer { closedir(d) }
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if ![".", "..", "stdout", "stderr"].contains(name) { return false }
        }
        return true
    }

    /// Writes `output` as the files `stdout` and `stderr` (0600) of an existing `folder`: plain
    /// writes, no temporary files, as nobody reads them before the end event is committed
    /// (and a crash before that has the event applied, and the files written, again).
    static func writeStreams(_ output: InlineOutput, into folder: String) throws(SystemError) {
        for (name, bytes) in [("stdout", output.stdout), ("stderr", output.stderr)] {
            let path = folder + "/" + name
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw SystemError.current("open", path: path) }
            defer { close(fd) }
            try AtomicFile.writeAll(fd, bytes, path: path)
        }
    }

    /// The stored stdout and stderr of an attempt, if both are here.
    public static func read(state: StateLocation, job: Int, attempt: Int) -> (stdout: [UInt8], stderr: [UInt8])? {
        let dir = folder(state: state, job: job, attempt: attempt)
        guard let out = try? LocalFile.read(dir + "/stdout"), let err = try? LocalFile.read(dir + "/stderr") else { return nil }
        return (out, err)
    }
}
