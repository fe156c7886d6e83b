import DroverCore
import Foundation
import Testing
@testable import DroverAgent

/// A real `drover-agent` on a temporary root, driven the way the coordinator will drive it:
/// files in the inbox, results and events read back. Cleans up every process it started.
final class AgentHarness {
    let root: String
    let dir: StateDirectory
    let binary: String
    var environment: [String: String]

    /// `root`: the agent's state directory (default: a new folder under the temporary directory).
    init(portable: Bool = false, heartbeat: Double = 0.2, root: String? = nil) throws {
        self.root = root ?? FileManager.default.temporaryDirectory.appendingPathComponent("drover-agent-\(UUID().uuidString.prefix(8))").path
        dir = StateDirectory(root: self.root)
        binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("drover-agent").path
        guard FileManager.default.fileExists(atPath: binary) else {
            throw HarnessError("build drover-agent first: swift build --build-tests (looked for \(binary))")
        }
        environment = ProcessInfo.processInfo.environment
        if portable { environment["DROVER_AGENT_PLATFORM"] = "portable" }
        self.heartbeat = heartbeat
    }

    private let heartbeat: Double

    deinit {
        _ = try? agent(["stop", "--kill-jobs"])
        for pid in cookiePIDs() { kill(pid, SIGKILL) }
        if let pid = agentPID() { kill(pid, SIGKILL) }
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Starts the agent detached (returns after its first heartbeat).
    func start() throws {
        let r = try agent(["run", "--detach", "--heartbeat-interval", String(heartbeat)])
        guard r.status == 0 else { throw HarnessError("agent did not start: \(r.stderr)") }
    }

    @discardableResult
    func agent(_ args: [String], stdin: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try ChildProcess.run([binary] + args + ["--root", root], environment: environment.map { "\($0.key)=\($0.value)" }, stdin: Array((stdin ?? "").utf8))
        return (r.status, r.stdoutText, r.stderrText)
    }

    /// Places a start command for a spec in the inbox.
    func submit(_ job: String, attempt: Int = 1, argv: [String]? = nil, shell: String? = nil, extra: [String: Any] = [:]) throws -> AttemptID {
        var spec: [String: Any] = ["job": job, "attempt": attempt]
        if let argv { spec["argv"] = argv }
        if let shell { spec["shell"] = shell }
        for (k, v) in extra { spec[k] = v }
        try place(["type": "start", "spec": spec])
        return AttemptID(job: job, attempt: attempt)
    }

    /// Writes a whole command file into the inbox by rename.
    func place(_ command: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: command)
        try placeRaw(data)
    }

    func placeRaw(_ data: Data, name: String? = nil) throws {
        let n = name ?? "\(DispatchTime.now().uptimeNanoseconds)-\(UUID().uuidString.prefix(6)).json"
        let tmp = dir.inbox + "/.tmp-" + n
        try data.write(to: URL(fileURLWithPath: tmp))
        guard rename(tmp, dir.inbox + "/" + n) == 0 else { throw HarnessError("rename into inbox failed") }
    }

    /// The attempt's last state, from its transitions file.
    func state(_ id: AttemptID) -> AttemptState? {
        Transitions.currentState(dir.transitionsFile(id))
    }

    /// Waits until `condition` holds or the deadline passes.
    func waitFor(_ what: String, timeout: Double = 20, _ condition: () -> Bool) throws {
        let end = Date().addingTimeInterval(timeout)
        while !condition() {
            if Date() > end { throw HarnessError("timed out waiting for \(what)") }
            usleep(10_000)
        }
    }

    /// Waits for the attempt's result and returns it.
    func result(_ id: AttemptID, timeout: Double = 20) throws -> JSONNode {
        try waitFor("\(id) to end", timeout: timeout) { state(id)?.isFinal == true }
        guard let r = readJSON(dir.resultFile(id)) else { throw HarnessError("\(id) ended without result.json") }
        return r
    }

    func waitRunning(_ id: AttemptID) throws {
        try waitFor("\(id) to run") { state(id) == .running }
    }

    /// Processes carrying this root's cookie (any attempt).
    func cookiePIDs() -> [pid_t] {
        LinuxProcessTableProbe.cookies(prefix: dir.cookiePrefix)
    }

    func agentPID() -> pid_t? {
        readJSON(dir.heartbeatFile)?["pid"]?.intValue.map { pid_t($0) }
    }

    func events() -> [JSONNode] {
        var cursor = EventCursor(dir: dir, from: 1)
        defer { cursor.close() }
        var out: [JSONNode] = []
        while true {
            let chunk = cursor.next(limit: 1 << 20)
            if chunk.isEmpty { return out }
            out += chunk.compactMap { try? JSONParser.parse($0.line) }
        }
    }

    func stdout(_ id: AttemptID) -> [UInt8] { (try? LocalFile.read(dir.stdoutFile(id))) ?? [] }
}

/// Reads /proc directly, independently of the agent's own code, to check what is left.
enum LinuxProcessTableProbe {
    static func cookies(prefix: String) -> [pid_t] {
        var out: [pid_t] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(name), let env = FileManager.default.contents(atPath: "/proc/\(name)/environ") else { continue }
            // Zombies have an empty environ; they are dead already.
            if env.split(separator: 0).contains(where: { $0.starts(with: Array(prefix.utf8)) }) { out.append(pid) }
        }
        return out
    }

    static func residentBytes(_ pid: pid_t) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0) * 1024
        }
        return 0
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

