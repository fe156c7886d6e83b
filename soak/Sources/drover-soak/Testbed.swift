import DroverCore
import Foundation

/// The testbed the soak runs on: `scripts/testbed` (which honours `DROVER_TESTBED_NET` and
/// `DROVER_TESTBED_DIR` from the environment) and its state directory.
struct Testbed {
    let script: String
    let directory: String
    let hosts: [String]
    /// Each host's address (from `hosts.json`).
    var addresses: [String: String] = [:]
    /// The jump host of each host behind a bastion (`"jump"` in `hosts.json`).
    var jumps: [String: String] = [:]

    var inventory: String { directory + "/hosts.json" }

    /// The pid (in this machine's namespace) of `host`'s pid 1, nil when it is off.
    func initPid(_ host: String) -> Int? {
        (try? LocalFile.read("\(directory)/hosts/\(host)/init.pid")).flatMap { Int(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Runs `scripts/testbed ARGS…`; throws with its stderr when it fails.
    @discardableResult
    func run(_ args: [String], timeout: Double = 120) throws -> String {
        let r: ChildProcess.Outcome
        do { r = try ChildProcess.run([script] + args, timeout: timeout) } catch {
            throw SoakFailure("scripts/testbed \(args.joined(separator: " ")): \(error)")
        }
        if r.status != 0 {
            throw SoakFailure("scripts/testbed \(args.joined(separator: " ")) exited \(r.status): \(r.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return r.stdoutText
    }

    /// Runs a fixed shell script as root inside a host (`exec HOST sh -c SCRIPT`); extra
    /// arguments reach the script as $1, $2, … and are never interpolated into it.
    @discardableResult
    func shell(_ host: String, _ script: String, _ args: String..., timeout: Double = 60) throws -> String {
        try run(["exec", host, "/bin/sh", "-c", script, "soak"] + args, timeout: timeout)
    }

    func kill(_ host: String) throws { try run(["kill", host]) }
    func start(_ host: String) throws { try run(["start", host]) }
    func partition(_ host: String) throws { try run(["partition", host]) }
    func heal(_ host: String) throws { try run(["heal", host]) }

    /// Power (`on`/`off`), network (`up`/`cut`) and number of processes of each host.
    func status() throws -> [String: (power: String, network: String, procs: Int)] {
        let text = try run(["status", "--json"])
        guard let list = (try? JSONParser.parse(text))?.arrayValue else { throw SoakFailure("scripts/testbed status --json: unreadable output") }
        var out: [String: (power: String, network: String, procs: Int)] = [:]
        for h in list {
            if let name = h["host"]?.stringValue { out[name] = (h["power"]?.stringValue ?? "?", h["network"]?.stringValue ?? "?", h["procs"]?.intValue ?? 0) }
        }
        return out
    }
}
