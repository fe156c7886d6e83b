import DroverCore
import DroverInventory
import DroverSSH
import Foundation

/// Builds the agent on a host with the host's own Swift toolchain and brings the binary back
/// into the local catalog (`drover deploy --build-on-host`): how a Mac or an aarch64 Linux box
/// gets its agent when nobody built one for its platform.
///
/// What is uploaded is the agent's own small package: `Package.swift` for the targets the agent
/// needs (CDroverSys, DroverCore, DroverProtocol, DroverAgent, drover-agent) and their sources, with no
/// dependency to fetch, so the host needs a toolchain and nothing from the network. On Linux
/// the build is fully static (`-static-executable`), so it also fits hosts without Swift.
public struct HostBuild: Sendable {
    /// Where the agent's sources are on this machine.
    public let source: String
    /// Seconds the remote build may take.
    public var timeout: Double = 1200

    /// The folders of the agent's package, relative to the source folder.
    static let folders = ["Sources/CDroverSys", "Sources/DroverCore", "Sources/DroverProtocol", "Sources/DroverAgent", "Sources/drover-agent"]

    /// The agent-only manifest sent to the host (kept to the agent's targets of the main `Package.swift`).
    static let manifest = """
        // swift-tools-version:6.0
        // The Drover agent alone, as `drover deploy --build-on-host` builds it on a host.
        import PackageDescription

        let package = Package(
            name: "DroverAgentBuild",
            platforms: [.macOS(.v13)],
            products: [.executable(name: "drover-agent", targets: ["drover-agent"])],
            targets: [
                .target(name: "CDroverSys"),
                .target(name: "DroverCore", dependencies: ["CDroverSys"]),
                .target(name: "DroverProtocol", dependencies: ["DroverCore"]),
                .target(name: "DroverAgent", dependencies: ["DroverCore", "DroverProtocol", "CDroverSys"]),
                .executableTarget(name: "drover-agent", dependencies: ["DroverAgent"]),
            ],
            swiftLanguageModes: [.v6]
        )

        """

    public init(source: String) { self.source = source }

    /// The agent's sources: `$DROVER_AGENT_SOURCE`, the copy `scripts/install` leaves in
    /// `$XDG_DATA_HOME/drover/agent-source`, or the checkout the running `drover` was built in.
    public static func locate(drover: String = AgentCatalog.currentExecutable()) -> HostBuild? {
        var candidates: [String] = []
        if let s = LocalUser.environment("DROVER_AGENT_SOURCE") { candidates.append(s) }
        candidates.append((AgentCatalog.folder as NSString).deletingLastPathComponent + "/agent-source")
        var dir = (drover as NSString).deletingLastPathComponent
        for _ in 0..<5 {
            candidates.append(dir)
            dir = (dir as NSString).deletingLastPathComponent
        }
        let found = candidates.first { c in folders.allSatisfy { LocalFile.exists(c + "/" + $0) } }
        return found.map(HostBuild.init(source:))
    }

    /// The shell line that finds a Swift toolchain on a host, or fails.
    static let findSwift = #"PATH="$PATH:/opt/swift/usr/bin:/usr/local/swift/usr/bin:$HOME/.swiftly/bin:/usr/share/swift/usr/bin"; export PATH; command -v swift >/dev/null 2>&1"#

    /// Whether the host has a Swift toolchain (the probe's `swift=1`).
    static let probeLine = "if \(findSwift); then echo swift=1; else echo swift=0; fi"

    /// Builds on the host and stores the result as `AgentCatalog.folder/<platform>/drover-agent`;
    /// returns the catalog path.
    public func build(on host: HostSpec, session: any HostSession, platform: String) async throws(SSHError) -> String {
        let q = RemotePath.shell
        let work = host.root + "/build"
        let tarball = try packSources(host: host.name)
        defer { unlink(tarball) }
        let prepare = try await session.run("umask 077 && mkdir -p \(q(work)) && rm -rf \(q(work + "/src")) && mkdir \(q(work + "/src"))", timeout: 30)
        guard prepare.status == .exited(0) else {
            throw SSHError(.sftpFailed, host: host.name, operation: "prepare \(work)", message: prepare.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        try await session.upload(file: tarball, to: work + "/agent-src.tar", mode: 0o600)
        let script = """
            \(Self.findSwift) || { echo "no swift on PATH (nor in /opt/swift/usr/bin, ~/.swiftly/bin)" >&2; exit 4; }
            cd \(q(work + "/src")) && tar -xf ../agent-src.tar || exit 5
            static=; [ "$(uname -s)" = Linux ] && static="-Xswiftc -static-executable"
            if ! swift build -c release --product drover-agent $static > ../build.log 2>&1; then tail -n 25 ../build.log >&2; exit 3; fi
            bin=$(swift build -c release --show-bin-path) && "$bin/drover-agent" --version && echo "path=$bin/drover-agent"
            """
        let r = try await session.run(script, timeout: timeout)
        let facts = HostProbe.parseFacts(r.stdoutText)
        guard r.status == .exited(0), let built = facts["path"], r.stdoutText.contains("drover-agent") else {
            let why = r.stderrText.trimmingCharacters(in: .whitespacesAndNewlines)
            throw SSHError(.channelFailed, host: host.name, operation: "build the agent with the host's Swift toolchain",
                           message: "\(r.status): \(why.isEmpty ? r.stdoutText : why) (the whole log is \(work)/build.log on the host)")
        }
        let folder = AgentCatalog.folder + "/" + platform
        let destination = folder + "/drover-agent"
        do {
            try LocalFile.makeDirectories(folder)
        } catch {
            throw SSHError(.localIO, host: host.name, operation: "create \(folder)", message: error.description)
        }
        try await session.download(built, to: destination + ".partial")
        chmod(destination + ".partial", 0o755)
        guard rename(destination + ".partial", destination) == 0 else {
            throw SSHError(.localIO, host: host.name, operation: "store the built agent", message: "rename to \(destination) failed: \(String(cString: strerror(errno)))")
        }
        return destination
    }

    /// A tar of the agent's package in a temporary file.
    func packSources(host: String) throws(SSHError) -> String {
        let staging = NSTemporaryDirectory() + "drover-agent-src-\(UUID().uuidString)"
        let tarball = staging + ".tar"
        defer { try? FileManager.default.removeItem(atPath: staging) }
        do {
            try LocalFile.makeDirectories(staging)
            try AtomicFile.write(Array(Self.manifest.utf8), to: staging + "/Package.swift", mode: 0o644, durable: false)
            let pack = #"out=$1 manifest=$2 src=$3; shift 3; exec tar -cf "$out" -C "$manifest" Package.swift -C "$src" "$@""#
            let r = try ChildProcess.run(["/bin/sh", "-c", pack, "tar", tarball, staging, source] + Self.folders, timeout: 60)
            guard r.status == 0 else {
                throw SSHError(.localIO, host: host, operation: "pack the agent's sources from \(source)", message: r.stderrText)
            }
        } catch let e as SSHError {
            throw e
        } catch {
            throw SSHError(.localIO, host: host, operation: "pack the agent's sources from \(source)", message: "\(error)")
        }
        return tarball
    }
}
