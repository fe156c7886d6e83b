import DroverCoordinator
import DroverCore
import Foundation
import Testing

/// A coordinator on the testbed with its own state directory, started and killed by the test.
final class CoordinatorFixture {
    let state: String
    let inventory: String
    var pid: pid_t = 0
    let arguments: [String]

    /// `inventory`: another inventory file than the testbed's hosts.json (for its hosts).
    /// `leaseTTL` nil: the coordinator's default lease.
    init(deadAfter: Double = 5, leaseTTL: Double? = 30, extra: [String] = [], inventory: String? = nil) throws {
        state = try Testbed.tempDirectory() + "/state"
        self.inventory = try inventory ?? Testbed.root() + "/hosts.json"
        arguments = ["--dead-after", String(deadAfter)] + (leaseTTL.map { ["--lease-ttl", String($0)] } ?? []) + extra
    }

    /// Runs `body` with a coordinator that sees every host up, and tears everything down
    /// afterwards, also when `body` fails.
    static func with(deadAfter: Double = 5, leaseTTL: Double? = 30, extra: [String] = [], inventory: String? = nil, _ body: (CoordinatorFixture) async throws -> Void) async throws {
        let f = try CoordinatorFixture(deadAfter: deadAfter, leaseTTL: leaseTTL, extra: extra, inventory: inventory)
        do {
            try f.startAndWaitForHosts()
            try await body(f)
        } catch {
            await f.tearDown()
            throw error
        }
        await f.tearDown()
    }

    /// Starts `drover coordinator` (detached, logging to <state>/coordinator.log) and waits until it holds its lock.
    func start() throws {
        let location = StateLocation(explicit: state)
        try location.prepare()
        pid = try spawn(["coordinator", "--state", state, "--inventory", inventory] + arguments, log: location.logPath)
        try waitFor("the coordinator to take its lock", timeout: 10) { location.runningCoordinator() == pid }
    }

    /// Starts `drover ARGV…` in a session of its own, its output appended to `log`.
    private func spawn(_ arguments: [String], log: String) throws -> pid_t {
        do {
            return try ChildProcess.startDetached([Testbed.droverBinary] + arguments, output: log)
        } catch {
            throw TestbedError("cannot start drover \(arguments.first ?? ""): \(error)")
        }
    }

    /// Starts the coordinator and waits until it sees every testbed host `up` (so placement is predictable).
    func startAndWaitForHosts() throws {
        try start()
        let j = try journal()
        // h1, h2 and h3 (a testbed made with --bastion also has h4, which tests wait for themselves).
        try waitFor("h1, h2 and h3 up", timeout: 30) { Set(try j.hosts().filter { $0.state == "up" }.map(\.name)).isSuperset(of: ["h1", "h2", "h3"]) }
    }

    /// Starts `drover ARGS… --state S --inventory I` without waiting (output to the coordinator log).
    func spawnDrover(_ args: [String]) throws -> pid_t {
        try spawn([args[0], "--state", state, "--inventory", inventory] + args.dropFirst(), log: state + "/client.log")
    }

    /// `kill -9` of the coordinator.
    func kill9() {
        guard pid > 0 else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        pid = 0
    }

    /// Makes a coordinator another process started (e.g. `drover wait`) this fixture's to stop.
    func adopt(_ other: pid_t?) {
        if let other, other > 0 { pid = other }
    }

    /// Stops the coordinator and every agent's jobs; removes the state directory.
    func tearDown() async {
        if pid > 0 {
            kill(pid, SIGTERM)
            var status: Int32 = 0
            for _ in 0..<300 {
                if waitpid(pid, &status, WNOHANG) == pid { pid = 0; break }
                usleep(20_000)
            }
            if pid > 0 { kill9() }
        }
        try? await Testbed.resetAgents()
        try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: state).deletingLastPathComponent().path)
    }

    /// Runs `drover ARGS… --state S --inventory I`.
    @discardableResult
    func drover(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try Testbed.run(Testbed.droverBinary, [args[0], "--state", state, "--inventory", inventory] + args.dropFirst())
    }

    /// Runs `drover ARGS… --state S` (for commands that read the journal only).
    @discardableResult
    func droverState(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try Testbed.run(Testbed.droverBinary, [args[0], "--state", state] + args.dropFirst())
    }

    /// Submits a job; returns its id.
    func submit(_ argv: [String], options: [String] = []) throws -> Int {
        let r = try drover(["submit"] + options + ["--"] + argv)
        guard r.status == 0, let id = Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestbedError("submit failed (\(r.status)): \(r.stdout) \(r.stderr)")
        }
        return id
    }

    /// A read connection to the journal.
    func journal() throws -> Journal { try Journal(StateLocation(explicit: state)) }

    var log: String { (try? String(contentsOfFile: state + "/coordinator.log", encoding: .utf8)) ?? "" }

    /// Waits until `condition` holds, polling every 50 ms; throws after `timeout` seconds.
    func waitFor(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if try condition() { return }
            if Date() >= deadline { throw TestbedError("timed out after \(Int(timeout)) s waiting for \(what)\n--- coordinator log ---\n\(log.suffix(3000))") }
            usleep(50_000)
        }
    }

    /// Waits until every job is final and returns them.
    func waitFinal(_ ids: [Int], timeout: Double) throws -> [JobRecord] {
        let j = try journal()
        try waitFor("jobs \(ids) to end", timeout: timeout) { try j.jobs(ids).allSatisfy(\.state.isFinal) }
        return try j.jobs(ids)
    }

    /// Waits until one of `ids` runs on `host`, and returns it.
    func runningJob(on host: String, among ids: [Int]) throws -> Int {
        let j = try journal()
        var found: Int?
        try waitFor("a job running on \(host)", timeout: 30) {
            found = try j.jobs(ids).first { $0.host == host && $0.state == .running }?.id
            return found != nil
        }
        return found!
    }

    /// The state of a host in the journal.
    func hostState(_ name: String) throws -> String? {
        try journal().hosts().first { $0.name == name }?.state
    }
}
