import DroverCore
import DroverInventory
import DroverSSH
import Foundation

/// What deploying to one host did.
public struct DeployReport: Sendable, Codable, Equatable {
    public enum Outcome: String, Sendable, Codable {
        /// The agent was installed and started.
        case deployed
        /// Another build was running; it was replaced, its jobs kept running.
        case upgraded
        /// This build was already running: nothing was changed.
        case upToDate = "up-to-date"
        case failed
    }

    public var host: String
    public var outcome: Outcome
    public var platform: String?
    public var build: String?
    public var agentPID: Int?
    /// The sequence number of the running agent's heartbeat that the deploy read (a fresh one,
    /// for an agent found running); not part of the JSON report.
    public var heartbeatSeq: Int? = nil
    /// The host's machine id (as `HostProbe.machineIDCommand` reads it).
    public var machineID: String?
    /// Why it failed, or a note.
    public var message: String?
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case host, outcome, platform, build, message, seconds
        case agentPID = "agent_pid"
        case machineID = "machine_id"
    }
}

/// Installs the agent on hosts: picks the binary for each host's platform, uploads it by
/// content hash, checks its SHA-256 on the host, starts it detached and waits for its first
/// heartbeat. A host already running the same build costs one round trip.
public struct Deployer: Sendable {
    public let catalog: AgentCatalog
    public var options = SSHOptions()
    /// Build the agent on every host with the host's Swift toolchain (`--build-on-host`); without
    /// it, a host is built on only when no binary fits it and it has `swift`.
    public var buildOnHost = false
    /// The agent's sources for building on hosts (default: `HostBuild.locate()`).
    public var hostBuild: HostBuild? = nil

    public init(catalog: AgentCatalog) {
        self.catalog = catalog
    }

    /// Deploys to every host in parallel.
    public func deploy(_ hosts: [HostSpec]) async -> [DeployReport] {
        await withTaskGroup(of: (Int, DeployReport).self) { group in
            for (i, host) in hosts.enumerated() { group.addTask { (i, await deploy(host)) } }
            var out = [DeployReport?](repeating: nil, count: hosts.count)
            for await (i, r) in group { out[i] = r }
            return out.compactMap { $0 }
        }
    }

    public func deploy(_ host: HostSpec) async -> DeployReport {
        let start = Date()
        var report = DeployReport(host: host.name, outcome: .failed, seconds: 0)
        do throws(SSHError) {
            let session = try await host.openSession(options: options)
            do throws(SSHError) {
                try await deploy(host, session: session, report: &report)
            } catch {
                await session.shutdown()
                throw error
            }
            await session.shutdown()
        } catch {
            report.outcome = .failed
            report.message = error.description
        }
        report.seconds = (Date().timeIntervalSince(start) * 1000).rounded() / 1000
        return report
    }

    /// Makes sure this build of the agent runs on a host already connected (one round trip
    /// when it does); the coordinator calls it on every (re)connection.
    public func ensure(_ host: HostSpec, session: any HostSession) async throws(SSHError) -> DeployReport {
        var report = DeployReport(host: host.name, outcome: .failed, seconds: 0)
        let start = Date()
        try await deploy(host, session: session, report: &report)
        report.seconds = (Date().timeIntervalSince(start) * 1000).rounded() / 1000
        return report
    }

    /// The path of the agent binary of `build` on the host.
    public static func agentPath(root: String, build: String) -> String {
        root + "/bin/drover-agent-" + build
    }

    private func deploy(_ host: HostSpec, session: any HostSession, report: inout DeployReport) async throws(SSHError) {
        let root = host.root
        let q = RemotePath.shell
        // One round trip tells the platform and whether this build already runs.
        let probe = try await session.run("""
            echo os=$(uname -s); echo arch=$(uname -m); echo glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed 's/^glibc //'); \
            echo now=$(date +%s); \(HostBuild.probeLine); p=$(head -c 32 \(q(root + "/agent.lock")) 2>/dev/null); \
            if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then echo alive=1; else echo alive=0; fi; \
            printf 'heartbeat='; head -c 4096 \(q(root + "/heartbeat")) 2>/dev/null | tr -d '\\n'; echo; \(HostProbe.machineIDCommand)
            """, timeout: options.operationTimeout)
        let facts = HostProbe.parseFacts(probe.stdoutText)
        if let problem = HostProbe.unparsable(facts, probe) {
            throw SSHError(.channelFailed, host: host.name, operation: "read the host's platform", message: problem)
        }
        report.machineID = facts["machine_id"].flatMap { $0.isEmpty ? nil : $0 }
        let platform = AgentBinary.platform(os: facts["os"] ?? "?", arch: facts["arch"] ?? "?")
        report.platform = platform
        let glibc = facts["glibc"].flatMap { $0.isEmpty ? nil : $0 }
        var (chosen, skipped) = catalog.choose(for: platform, glibc: glibc, sameMachine: host.transport == .local)
        let hasSwift = facts["swift"] == "1"
        if host.transport == .ssh && (buildOnHost || (chosen == nil && hasSwift)) {
            chosen = try await buildThere(host, session: session, platform: platform, hasSwift: hasSwift)
            skipped.append(buildOnHost ? "built on the host with its Swift toolchain: \(chosen!.path)"
                : "no binary in the catalog fits \(platform): built one on the host with its Swift toolchain: \(chosen!.path)")
        }
        guard let binary = chosen else {
            throw SSHError(.localIO, host: host.name, operation: "choose an agent binary",
                           message: noBinaryMessage(platform: platform, glibc: glibc, skipped: skipped))
        }
        report.build = binary.build
        if !skipped.isEmpty { report.message = skipped.joined(separator: "\n") }
        let heartbeat = facts["heartbeat"].flatMap { try? JSONParser.parse($0) }
        let now = facts["now"].flatMap(Double.init) ?? 0
        // Running: its lock holder is alive and its heartbeat is fresh.
        let runningBuild = heartbeat.flatMap { hb -> String? in
            // An agent of another machine beating in this root (a shared home) is not ours:
            // `run` below then refuses with the agent's own one-line explanation.
            if let theirs = hb["machine_id"]?.stringValue, let ours = report.machineID, theirs != ours { return nil }
            guard facts["alive"] == "1", let t = hb["time"]?.doubleValue, let interval = hb["interval"]?.doubleValue, now - t < max(3 * interval, 5) else { return nil }
            return hb["build"]?.stringValue
        }
        if runningBuild == binary.build {
            report.outcome = .upToDate
            report.agentPID = heartbeat?["pid"]?.intValue
            report.heartbeatSeq = heartbeat?["seq"]?.intValue
            return
        }

        // Upload by content hash (skipped when that file is already there), verify, then start.
        let bin = root + "/bin"
        let remote = Self.agentPath(root: root, build: binary.build)
        let sumCommand = "(sha256sum \(q(remote)) 2>/dev/null || shasum -a 256 \(q(remote)) 2>/dev/null) | cut -d' ' -f1"
        let setup = try await session.run("umask 077 && mkdir -p \(q(bin)) && chmod 700 \(q(root)) \(q(bin)) && \(sumCommand)", timeout: options.operationTimeout)
        if setup.status != .exited(0) {
            throw SSHError(.sftpFailed, host: host.name, operation: "prepare \(bin)", message: setup.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        if setup.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) != binary.sha256 {
            let tmp = remote + ".upload-\(UInt32.random(in: 0...UInt32.max))"
            try await session.upload(file: binary.path, to: tmp, mode: 0o700)
            let check = try await session.run("""
                s=$( (sha256sum \(q(tmp)) 2>/dev/null || shasum -a 256 \(q(tmp))) | cut -d' ' -f1); \
                if [ "$s" = \(binary.sha256) ]; then mv -f -- \(q(tmp)) \(q(remote)); else rm -f -- \(q(tmp)); echo "checksum $s" >&2; exit 3; fi
                """, timeout: options.operationTimeout)
            if check.status != .exited(0) {
                throw SSHError(.sftpFailed, host: host.name, operation: "verify the uploaded agent",
                               message: "SHA-256 on the host differs from \(binary.sha256) (\(check.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))); the upload was removed")
            }
        }
        // An agent of another build: stop it (its jobs keep running under their shims) and
        // start this one, which re-adopts them.
        if runningBuild != nil {
            _ = try await session.run("\(q(remote)) stop --root \(q(root))", timeout: 20)
            report.outcome = .upgraded
        } else {
            report.outcome = .deployed
        }
        let started = try await session.run("\(q(remote)) run --detach --root \(q(root))", timeout: 20)
        let text = (started.stdoutText + started.stderrText).trimmingCharacters(in: .whitespacesAndNewlines)
        if started.status != .exited(0) {
            throw SSHError(.channelFailed, host: host.name, operation: "start the agent", message: text.isEmpty ? "\(started.status)" : text)
        }
        // Confirm the running agent is this build (an old agent that did not stop would say otherwise).
        let hb = try await session.run("head -c 4096 \(q(root + "/heartbeat"))", timeout: options.operationTimeout)
        let node = try? JSONParser.parse(hb.stdoutText)
        report.agentPID = node?["pid"]?.intValue
        report.heartbeatSeq = node?["seq"]?.intValue
        if node?["build"]?.stringValue != binary.build {
            throw SSHError(.channelFailed, host: host.name, operation: "start the agent",
                           message: "the running agent is build \(node?["build"]?.stringValue ?? "?"), not \(binary.build): \(text)")
        }
    }

    /// Builds the agent on the host and returns the binary it stored in the local catalog.
    private func buildThere(_ host: HostSpec, session: any HostSession, platform: String, hasSwift: Bool) async throws(SSHError) -> AgentBinary {
        guard hasSwift else {
            throw SSHError(.channelFailed, host: host.name, operation: "build the agent on the host",
                           message: "no Swift toolchain there (`swift` is not on PATH, nor in /opt/swift/usr/bin or ~/.swiftly/bin): install one (swift.org/install), or build the agent elsewhere and put it in \(AgentCatalog.folder)/\(platform)/drover-agent")
        }
        guard let builder = hostBuild ?? HostBuild.locate() else {
            throw SSHError(.localIO, host: host.name, operation: "build the agent on the host",
                           message: "the agent's sources are not on this machine: run scripts/install from a Drover checkout (it keeps them in \((AgentCatalog.folder as NSString).deletingLastPathComponent)/agent-source) or set DROVER_AGENT_SOURCE to a checkout")
        }
        let path = try await builder.build(on: host, session: session, platform: platform)
        guard let built = try? AgentBinary.inspect(path), built.platform == platform else {
            throw SSHError(.localIO, host: host.name, operation: "build the agent on the host", message: "\(path) is not an executable for \(platform)")
        }
        return built
    }

    func noBinaryMessage(platform: String, glibc: String?, skipped: [String]) -> String {
        let others = catalog.binaries.filter { $0.platform != platform }.map { "\($0.platform) at \($0.path)" }
        var lines = ["no agent binary for \(platform)\(glibc.map { " with glibc \($0)" } ?? "")."]
        lines += skipped
        if !others.isEmpty { lines.append("other platforms known: " + others.joined(separator: "; ")) }
        if platform == "linux-x86_64" {
            lines.append("""
                Make the static agent (runs on any x86_64 Linux) and put it in the catalog:
                  scripts/install                   # from a Drover checkout, or:
                  swift build -c release --product drover-agent -Xswiftc -static-executable
                  install -D .build/release/drover-agent \(AgentCatalog.folder)/linux-x86_64/drover-agent
                """)
        } else {
            lines.append("""
                Build one on a machine of that kind (or let deploy do it: drover deploy --build-on-host):
                  swift build -c release --product drover-agent
                and copy .build/release/drover-agent to \(AgentCatalog.folder)/\(platform)/drover-agent here, or pass it with --agent PATH.
                """)
        }
        return lines.joined(separator: "\n")
    }
}
