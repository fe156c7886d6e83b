import DroverCore
import DroverInventory
import DroverSSH
import Foundation
import Testing

/// The SSH testbed started by `scripts/testbed up 3` (see docs/testbed.md).
///
/// Tests that need it are skipped when `$DROVER_TESTBED` is unset, unless
/// `$DROVER_REQUIRE_TESTBED=1` (as `scripts/test` sets), in which case they fail.
enum Testbed {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static var directory: String? {
        guard let d = ProcessInfo.processInfo.environment["DROVER_TESTBED"], !d.isEmpty else { return nil }
        return d
    }

    /// The testbed's directory; throws (failing the test, not crashing the runner) when it is not set.
    static func root() throws -> String {
        guard let d = directory else {
            throw TestbedError("DROVER_TESTBED is not set: start the testbed with `sudo scripts/testbed up 3` and export DROVER_TESTBED")
        }
        return d
    }

    /// Whether testbed tests should run: the testbed is up, or it is required (and its absence must fail).
    static var enabled: Bool {
        directory != nil || ProcessInfo.processInfo.environment["DROVER_REQUIRE_TESTBED"] == "1"
    }

    static func inventory() throws -> Inventory {
        guard let dir = directory else {
            throw TestbedError("DROVER_TESTBED is not set: start the testbed with `sudo scripts/testbed up 3` and export DROVER_TESTBED")
        }
        return try InventoryLoader(explicitPath: dir + "/hosts.json").load()
    }

    static func host(_ name: String) throws -> HostSpec {
        guard let h = try inventory().host(named: name) else { throw TestbedError("no host \(name) in the testbed") }
        return h
    }

    static func target(_ name: String) throws -> SSHTarget {
        target(try host(name))
    }

    /// The SSH parameters of a host (its hops' too), without ssh-agent.
    static func target(_ h: HostSpec) -> SSHTarget {
        SSHTarget(
            name: h.name, address: h.address, port: h.port, user: h.user, identities: h.identities, useAgent: false,
            knownHostsFile: h.knownHosts, connectTimeout: h.connectTimeout, jump: h.jump.map { target($0) })
    }

    static func connect(_ name: String, options: SSHOptions = SSHOptions()) async throws -> SSHConnection {
        try await SSHConnection.connect(to: target(name), options: options)
    }

    /// The environment for `scripts/testbed`: it acts on the testbed in `$DROVER_TESTBED`, so
    /// `DROVER_TESTBED_DIR` is that directory and `DROVER_TESTBED_NET` the N of its 10.N.0.x
    /// addresses (from hosts.json) unless they are set already.
    static var scriptEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        guard let dir = directory else { return env }
        if env["DROVER_TESTBED_DIR"] == nil { env["DROVER_TESTBED_DIR"] = dir }
        if env["DROVER_TESTBED_NET"] == nil, let address = try? inventory().hosts.first?.address {
            let parts = address.split(separator: ".")
            if parts.count == 4, parts[0] == "10", let n = Int(parts[1]) { env["DROVER_TESTBED_NET"] = String(n) }
        }
        return env
    }

    /// Runs `scripts/testbed ARGS…` and returns its output; throws on a non-zero exit.
    @discardableResult
    static func script(_ arguments: String...) throws -> String {
        let r = try run(repoRoot + "/scripts/testbed", arguments, environment: scriptEnvironment)
        guard r.status == 0 else { throw TestbedError("scripts/testbed \(arguments.joined(separator: " ")) failed: \(r.stderr)") }
        return r.stdout
    }

    /// Powers `host` off for the duration of `body`, and on again afterwards even when `body` fails.
    static func withHostKilled<T>(_ host: String, _ body: () async throws -> T) async throws -> T {
        try script("kill", host)
        do {
            let v = try await body()
            try script("start", host)
            return v
        } catch {
            _ = try? script("start", host)
            throw error
        }
    }

    /// Cuts `host`'s network for the duration of `body`, healing it afterwards even when `body` fails.
    static func withHostPartitioned<T>(_ host: String, _ body: (_ heal: () throws -> Void) async throws -> T) async throws -> T {
        try script("partition", host)
        do {
            let v = try await body { try script("heal", host) }
            try script("heal", host)
            return v
        } catch {
            _ = try? script("heal", host)
            throw error
        }
    }

    /// Whether `scripts/testbed` can make hosts that share one home (`up N --shared-home`).
    static var hasSharedHomeOption: Bool {
        ((try? run(repoRoot + "/scripts/testbed", ["help"], environment: scriptEnvironment))?.stdout ?? "").contains("--shared-home")
    }

    /// Runs `body` while `hosts` share one home directory (`/home/dtest`), as an NFS lab would,
    /// and gives every host its own home back afterwards, also when `body` fails. Agents are
    /// stopped (their jobs killed) and `~/.drover` removed before and after.
    ///
    /// With `scripts/testbed up N --shared-home` the testbed is made again with every home
    /// shared (then again without); otherwise the first host's home folder is bind-mounted over
    /// the others' `/home/dtest` inside their mount namespaces.
    static func withSharedHome<T>(_ hosts: [String], _ body: () async throws -> T) async throws -> T {
        guard let first = hosts.first, let dir = directory else { throw TestbedError("DROVER_TESTBED is not set") }
        try await resetAgents()
        let count = String(try inventory().hosts.count)
        let rebuild = hasSharedHomeOption
        var bound: [String] = []
        func restore() async {
            try? await resetAgents()
            if rebuild {
                _ = try? script("up", count)
            } else {
                for h in bound { _ = try? script("exec", h, "umount", "/home/dtest") }
            }
        }
        do {
            if rebuild {
                try script("up", count, "--shared-home")
            } else {
                for h in hosts.dropFirst() {
                    try script("exec", h, "mount", "--bind", dir + "/hosts/" + first + "/home", "/home/dtest")
                    bound.append(h)
                }
            }
            let v = try await body()
            await restore()
            return v
        } catch {
            await restore()
            throw error
        }
    }

    /// Runs a program to completion and collects its output.
    static func run(_ path: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try ChildProcess.run([path] + arguments, environment: environment.map { $0.map { "\($0.key)=\($0.value)" } })
        return (r.status, r.stdoutText, r.stderrText)
    }

    /// A fresh temporary directory, removed by the caller.
    static func tempDirectory() throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("drover-it-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// The resident set size of this process in bytes (Linux).
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return kb * 1024
        }
        return 0
    }

    /// Waits until `condition` holds, checking every 100 ms; throws after `timeout` seconds.
    static func waitFor(_ what: String, timeout: Double, _ condition: () async throws -> Bool) async throws {
        let start = ContinuousClock.now
        while true {
            if try await condition() { return }
            if elapsed(since: start) >= timeout { throw TestbedError("timed out after \(Int(timeout)) s waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    static func elapsed(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

struct TestbedError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Every test that uses the shared testbed hosts runs inside this suite, one at a time,
/// because some of them power hosts off or cut their network.
@Suite("Testbed", .serialized, .timeLimit(.minutes(3)), .enabled(if: Testbed.enabled, "needs the SSH testbed: sudo scripts/testbed up 3; export DROVER_TESTBED=$PWD/testbed"))
struct TestbedSuite {}
