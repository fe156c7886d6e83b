import DroverCoordinator
import DroverCore
import Foundation
import Testing

/// What the failure tests (docs/failures.md, "Tested by") do on a testbed host: commands run
/// inside its namespaces as root, so they work while the host is cut off from the network.
enum HostSide {
    /// Runs `script` with `sh -c` on `host`; returns its stdout, trimmed.
    static func sh(_ host: String, _ script: String) throws -> String {
        try Testbed.script("exec", host, "sh", "-c", script).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// How many processes on `host` have exactly `args` as their command line (no quotes in it).
    static func count(_ host: String, _ args: String) throws -> Int {
        let out = try sh(host, "ps -eo args | grep -cxF '\(args)' || true")
        guard let n = Int(out) else { throw TestbedError("cannot count '\(args)' on \(host): \(out)") }
        return n
    }

    /// The agent's state directory on `host` (the default root, `~/.drover/%h`).
    static func root(_ host: String) -> String { "/home/dtest/.drover/\(host)" }

    /// The pid of the agent that holds `agent.lock` on `host`.
    static func agentPID(_ host: String) throws -> Int {
        let out = try sh(host, "head -c 32 \(root(host))/agent.lock")
        guard let pid = Int(out), pid > 0 else { throw TestbedError("no agent pid in \(host)'s agent.lock: '\(out)'") }
        return pid
    }

    /// Stops the agent of `host` with SIGSTOP (the host falls silent, its processes stay) for
    /// the duration of `body`; SIGCONT afterwards, also when `body` fails.
    static func withAgentStopped<T>(_ host: String, _ body: () async throws -> T) async throws -> T {
        let pid = try agentPID(host)
        _ = try sh(host, "kill -STOP \(pid)")
        do {
            let v = try await body()
            _ = try sh(host, "kill -CONT \(pid)")
            return v
        } catch {
            _ = try? sh(host, "kill -CONT \(pid)")
            throw error
        }
    }
}

extension CoordinatorFixture {
    /// Starts `drover ARGS… --state S --inventory I` without waiting, its stdout and stderr appended to `output`.
    func spawnDrover(_ args: [String], output: String) throws -> pid_t {
        do {
            return try ChildProcess.startDetached([Testbed.droverBinary, args[0], "--state", state, "--inventory", inventory] + args.dropFirst(), output: output)
        } catch {
            throw TestbedError("cannot start drover \(args[0]): \(error)")
        }
    }

    /// Waits until the child `pid` (from `spawnDrover`) exits and returns its exit status; kills it
    /// (and fails) at the deadline.
    func exitStatus(of pid: pid_t, timeout: Double) throws -> Int32 {
        var status: Int32 = 0
        do {
            try waitFor("drover (pid \(pid)) to exit", timeout: timeout) { waitpid(pid, &status, WNOHANG) == pid }
        } catch {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
            throw error
        }
        return (status >> 8) & 0xff
    }

    /// The audit events of `kind` (of `job`, when given).
    func events(_ kind: String, job: Int? = nil) throws -> [AuditEvent] {
        let j = try journal()
        return try (job.map { try j.events(job: $0) } ?? j.events()).filter { $0.kind == kind }
    }

    /// The messages of the audit events of `kind` (for failure messages; none when the journal cannot be read).
    func messages(_ kind: String, job: Int? = nil) -> [String] {
        ((try? events(kind, job: job)) ?? []).map(\.message)
    }

    /// The job, which must exist.
    func job(_ id: Int) throws -> JobRecord {
        try #require(try journal().job(id), "job \(id) is in the journal")
    }

    /// Waits until `host` is in `state`.
    func waitHost(_ host: String, _ state: String, timeout: Double) throws {
        try waitFor("\(host) \(state)", timeout: timeout) { try hostState(host) == state }
    }

    /// A file's text, or "" when it cannot be read.
    static func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
}
