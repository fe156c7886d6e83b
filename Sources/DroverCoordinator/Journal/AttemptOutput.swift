import DroverCore
import DroverProtocol
import Foundation

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
            try AtomicFile.write(output.stdout, to: dir + "/stdout", mode: 0o600, durable: false)
            try AtomicFile.write(output.stderr, to: dir + "/stderr", mode: 0o600, durable: false)
        } catch {
            // Not fatal: the output is still on the host, where `drover logs` reads it.
        }
    }

    /// The stored stdout and stderr of an attempt, if both are here.
    public static func read(state: StateLocation, job: Int, attempt: Int) -> (stdout: [UInt8], stderr: [UInt8])? {
        let dir = folder(state: state, job: job, attempt: attempt)
        guard let out = try? LocalFile.read(dir + "/stdout"), let err = try? LocalFile.read(dir + "/stderr") else { return nil }
        return (out, err)
    }
}
