import DroverCore
import Foundation

/// An agent binary on this machine that can be deployed, with the platform it runs on.
public struct AgentBinary: Sendable, Equatable {
    public var path: String
    /// `linux-x86_64`, `linux-aarch64`, `darwin-arm64`, …
    public var platform: String
    /// The SHA-256 of the file, hex; its first 12 digits are the agent's build hash.
    public var sha256: String
    /// The glibc this binary needs at least (binaries built here need this machine's), if Linux.
    public var minimumGlibc: String?
    public var size: Int

    public var build: String { String(sha256.prefix(12)) }

    /// Reads a binary's platform from its ELF or Mach-O header; nil when it is neither.
    public static func inspect(_ path: String, minimumGlibc: String? = nil) throws(SystemError) -> AgentBinary? {
        let bytes = try LocalFile.read(path)
        guard let platform = platform(ofExecutable: bytes) else { return nil }
        return AgentBinary(
            path: path, platform: platform, sha256: hexString(SHA256.hash(bytes)),
            minimumGlibc: platform.hasPrefix("linux") ? minimumGlibc : nil, size: bytes.count)
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
/// `$XDG_DATA_HOME/drover/agents/<os>-<arch>/drover-agent` (default `~/.local/share/…`),
/// and the local build next to the running `drover`.
public struct AgentCatalog: Sendable {
    public private(set) var binaries: [AgentBinary] = []
    public let searched: [String]

    public init(explicit: [String], drover: String = AgentCatalog.currentExecutable()) throws(SystemError) {
        var searched: [String] = []
        let localGlibc = AgentCatalog.localGlibc()
        for path in explicit {
            searched.append(path)
            if let b = try AgentBinary.inspect(path, minimumGlibc: localGlibc) { binaries.append(b) }
        }
        let data = LocalUser.environment("XDG_DATA_HOME") ?? LocalUser.home + "/.local/share"
        let folder = data + "/drover/agents"
        searched.append(folder + "/<os>-<arch>/drover-agent")
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: folder))?.sorted() ?? [] {
            let path = "\(folder)/\(entry)/drover-agent"
            if LocalFile.exists(path), let b = try? AgentBinary.inspect(path, minimumGlibc: nil) { binaries.append(b) }
        }
        let local = (drover as NSString).deletingLastPathComponent + "/drover-agent"
        searched.append(local)
        if LocalFile.exists(local), let b = try AgentBinary.inspect(local, minimumGlibc: localGlibc) { binaries.append(b) }
        self.searched = searched
    }

    /// The first binary that runs on a host of `platform` with `glibc` (e.g. "2.36").
    public func binary(for platform: String, glibc: String?) -> AgentBinary? {
        binaries.first { b in
            guard b.platform == platform else { return false }
            guard let need = b.minimumGlibc, let have = glibc else { return true }
            return AgentCatalog.versionAtLeast(have, need)
        }
    }

    /// "2.36" >= "2.31".
    static func versionAtLeast(_ have: String, _ need: String) -> Bool {
        let h = have.split(separator: ".").compactMap { Int($0) }, n = need.split(separator: ".").compactMap { Int($0) }
        for i in 0..<max(h.count, n.count) {
            let a = i < h.count ? h[i] : 0, b = i < n.count ? n[i] : 0
            if a != b { return a > b }
        }
        return true
    }

    /// This machine's glibc version ("2.36"), nil elsewhere.
    static func localGlibc() -> String? {
        #if os(Linux)
        // gnu_get_libc_version is not in Swift's Glibc module; look it up at run time.
        typealias VersionFunction = @convention(c) () -> UnsafePointer<CChar>
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gnu_get_libc_version") else { return nil }
        return String(cString: unsafeBitCast(symbol, to: VersionFunction.self)())
        #else
        return nil
        #endif
    }

    public static func currentExecutable() -> String {
        #if os(Linux)
        if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return p }
        #endif
        return Bundle.main.executablePath ?? CommandLine.arguments[0]
    }
}
