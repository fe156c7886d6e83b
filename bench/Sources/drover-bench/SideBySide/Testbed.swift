import DroverCore
import Foundation

/// The running testbed (scripts/testbed): its hosts, keys and the script that powers them.
struct Testbed {
    let dir: String
    let hosts: [(name: String, address: String)]
    /// scripts/testbed of this checkout (bench/run runs from its top; the state dir may be anywhere,
    /// with DROVER_TESTBED_DIR).
    var script: String { FileManager.default.currentDirectoryPath + "/scripts/testbed" }
    var inventory: String { dir + "/hosts.json" }
    var key: String { dir + "/id_ed25519" }
    var knownHosts: String { dir + "/known_hosts" }

    init(dir: String) throws {
        self.dir = dir
        guard let node = try? JSONParser.parse(LocalFile.read(dir + "/hosts.json")), let list = node["hosts"]?.arrayValue else {
            throw BenchFailure("cannot read \(dir)/hosts.json (is the testbed up? scripts/testbed up 3)")
        }
        hosts = list.compactMap { h in h["name"]?.stringValue.flatMap { n in h["address"]?.stringValue.map { (n, $0) } } }
    }

    /// Runs scripts/testbed with these arguments; throws with its stderr on failure.
    func run(_ args: String..., timeout: Double = 120) throws {
        let r = try ChildProcess.run([script] + args, timeout: timeout)
        if r.status != 0 { throw BenchFailure("scripts/testbed \(args.joined(separator: " ")): \(r.stderrText)") }
    }

    /// Runs a command as root inside a host; its stdout, or "" when the host is off.
    func exec(_ host: String, _ argv: [String]) -> String {
        guard let r = try? ChildProcess.run([script, "exec", host] + argv, timeout: 30), r.status == 0 || r.status == 1 else { return "" }
        return r.stdoutText
    }

    /// Processes on a host whose command line contains the pattern.
    func count(_ host: String, _ pattern: String) -> Int {
        Int(exec(host, ["pgrep", "-fc", pattern]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    func countAll(_ pattern: String) -> Int { hosts.reduce(0) { $0 + count($1.name, pattern) } }

    func killAll(_ pattern: String) {
        for h in hosts { _ = exec(h.name, ["pkill", "-KILL", "-f", pattern]) }
    }

    /// An inventory like the testbed's with `slots` per host, written to a temporary file.
    func inventory(slots: Int) throws -> String {
        let text = try String(contentsOfFile: inventory, encoding: .utf8)
            .replacingOccurrences(of: "\"defaults\": {", with: "\"defaults\": { \"slots\": \(slots),")
        let path = NSTemporaryDirectory() + "drover-bench-hosts-\(getpid())-\(slots).json"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Waits until every host is powered on and its network is up (after a scenario's faults).
    func restore() {
        for h in hosts {
            _ = try? run("heal", h.name)
            _ = try? run("start", h.name)
        }
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Polls a condition every 10 ms until it holds; throws after the timeout.
func waitFor(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while try !condition() {
        if Date() > deadline { throw BenchFailure("timed out after \(Int(timeout)) s waiting for \(what)") }
        usleep(10_000)
    }
}

func now() -> Double { Date().timeIntervalSince1970 }
