import DroverCore
import Foundation

/// An agent binary on this machine that can be deployed, with the platform it runs on.
public struct AgentBinary: Sendable, Equatable {
    public var path: String
    /// `linux-x86_64`, `linux-aarch64`, `darwin-arm64`, …
    public var platform: String
    /// The SHA-256 of the file, hex; its first 12 digits are the agent's build hash.
    public var sha256: String
    /// What a Linux binary needs from its host (nil for Mach-O): none when fully static.
    public var linkage: ELFLinkage?
    public var size: Int

    public var build: String { String(sha256.prefix(12)) }

    /// The glibc a dynamically linked Linux binary needs at least; nil when static or not Linux.
    public var minimumGlibc: String? { linkage?.isStatic == false ? (linkage?.glibc ?? "") : nil }

    /// Reads a binary's platform and linkage from its ELF or Mach-O header; nil when it is neither.
    public static func inspect(_ path: String) throws(SystemError) -> AgentBinary? {
        let bytes = try LocalFile.read(path)
        guard let platform = platform(ofExecutable: bytes) else { return nil }
        return AgentBinary(
            path: path, platform: platform, sha256: hexString(SHA256.hash(bytes)),
            linkage: platform.hasPrefix("linux") ? ELFLinkage.read(bytes) : nil, size: bytes.count)
    }

    /// Why this binary cannot run on a host of `platform` with `glibc` ("2.31"; nil when the host
    /// has none, e.g. musl), or nil when it can. `sameMachine`: the host is this machine, which
    /// has the libraries a local build links to.
    public func unfit(platform host: String, glibc: String?, sameMachine: Bool = false) -> String? {
        guard platform == host else { return "built for \(platform)" }
        guard let linkage, !linkage.isStatic, !sameMachine else { return nil }
        let runtime = linkage.swiftRuntime
        if !runtime.isEmpty {
            return "links the Swift runtime dynamically (\(runtime.prefix(2).joined(separator: ", "))), which a host without Swift lacks"
        }
        guard let have = glibc else {
            return "is dynamically linked against glibc (\(linkage.interpreter ?? "no interpreter")) and the host has no glibc"
        }
        if let need = linkage.glibc, !VersionNumber.atLeast(have, need) {
            return "needs glibc \(need) and the host has \(have)"
        }
        return nil
    }

    static func platform(ofExecutable b: [UInt8]) -> String? {
        if b.count > 20, b[0] == 0x7F, b[1] == UInt8(ascii: "E"), b[2] == UInt8(ascii: "L"), b[3] == UInt8(ascii: "F") {
            let machine = UInt16(b[18]) | UInt16(b[19]) << 8  // little-endian ELF (x86-64, AArch64)
            switch machine {
            case 0x3E: return "linux-x86_64"
            case 0xB7: return "linux-aarch64"
            default: return "linux-machine\(machine)"
            }
        }
        if b.count > 8, b[0] == 0xCF, b[1] == 0xFA, b[2] == 0xED, b[3] == 0xFE {
            let cpu = UInt32(b[4]) | UInt32(b[5]) << 8 | UInt32(b[6]) << 16 | UInt32(b[7]) << 24
            switch cpu {
            case 0x0100_0007: return "darwin-x86_64"
            case 0x0100_000C: return "darwin-arm64"
            default: return "darwin-cpu\(cpu)"
            }
        }
        return nil
    }

    /// The platform name for `uname -s` and `uname -m` as a host reports them.
    public static func platform(os: String, arch: String) -> String {
        let o = os.lowercased()
        var a = arch.lowercased()
        if a == "amd64" { a = "x86_64" }
        if a == "arm64" && o == "linux" { a = "aarch64" }
        if a == "aarch64" && o == "darwin" { a = "arm64" }
        return "\(o)-\(a)"
    }
}

/// Where deploy looks for agent binaries, in order: every `--agent PATH`, the folder
/// `$XDG_DATA_HOME/drover/agents/<os>-<arch>/drover-agent` (default `~/.local/share/…`;
/// `scripts/install` puts the static Linux agent there), and the `drover-agent` next to the
/// running `drover`.
public struct AgentCatalog: Sendable {
    public private(set) var binaries: [AgentBinary] = []
    public let searched: [String]

    /// The catalog folder: `$XDG_DATA_HOME/drover/agents` (default `~/.local/share/drover/agents`).
    public static var folder: String {
        (LocalUser.environment("XDG_DATA_HOME").flatMap { $0.isEmpty ? nil : $0 } ?? LocalUser.home + "/.local/share") + "/drover/agents"
    }

    public init(explicit: [String], drover: String = AgentCatalog.currentExecutable()) throws(SystemError) {
        var searched: [String] = []
        for path in explicit {
            searched.append(path)
            if let b = try AgentBinary.inspect(path) { binaries.append(b) }
        }
        let folder = Self.folder
        searched.append(folder + "/<os>-<arch>/drover-agent")
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: folder))?.sorted() ?? [] {
            let path = "\(folder)/\(entry)/drover-agent"
            if LocalFile.exists(path), let b = try? AgentBinary.inspect(path) { binaries.append(b) }
        }
        let local = (drover as NSString).deletingLastPathComponent + "/drover-agent"
        searched.append(local)
        if LocalFile.exists(local), !binaries.contains(where: { $0.path == local }), let b = try AgentBinary.inspect(local) { binaries.append(b) }
        self.searched = searched
    }

    /// The first binary that runs on a host of `platform` with `glibc` (e.g. "2.36"; nil when it
    /// has none), and one line for each binary of that platform skipped on the way, saying why.
    public func choose(for platform: String, glibc: String?, sameMachine: Bool = false) -> (binary: AgentBinary?, skipped: [String]) {
        var skipped: [String] = []
        for b in binaries where b.platform == platform {
            if let why = b.unfit(platform: platform, glibc: glibc, sameMachine: sameMachine) {
                skipped.append("skipped \(b.path): it \(why)")
            } else {
                return (b, skipped)
            }
        }
        return (nil, skipped)
    }

    public static func currentExecutable() -> String {
        #if os(Linux)
        if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return p }
        #endif
        return Bundle.main.executablePath ?? CommandLine.arguments[0]
    }
}
