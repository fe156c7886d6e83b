import DroverCore
import Foundation

/// Dask distributed (SSHCluster over asyncssh) on the testbed hosts: bench/peers/dask_peer.py,
/// run with the Python of the virtual environment bench/run installs.
struct DaskPeer {
    let bed: Testbed
    let python: String
    let script: String

    /// Runs one scenario of the peer script and returns its JSON answer.
    func run(_ scenario: String, _ args: [String] = [], timeout: Double = 900) throws -> JSONNode {
        let r = try ChildProcess.run([python, script, scenario, "--testbed", bed.dir] + args, timeout: timeout)
        guard r.status == 0, let line = r.stdoutText.split(separator: "\n").last,
              let node = try? JSONParser.parse(Array(line.utf8)) else {
            throw BenchFailure("dask \(scenario) failed (exit \(r.status)): \(r.stderrText.split(separator: "\n").suffix(5).joined(separator: "\n"))")
        }
        return node
    }

    var version: String {
        ((try? ChildProcess.run([python, "-c", "import dask, distributed, asyncssh; print(dask.__version__, distributed.__version__, asyncssh.__version__)"]))?
            .stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)).map { v in
                let p = v.split(separator: " ")
                return p.count == 3 ? "dask \(p[0]), distributed \(p[1]), asyncssh \(p[2])" : v
            } ?? "not installed"
    }
}

extension JSONNode {
    var doubles: [Double] { arrayValue?.compactMap(\.doubleValue) ?? [] }
}
