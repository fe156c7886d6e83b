#if os(Linux)
import DroverCore
import Glibc

/// OS release, kernel and CPU model of a Linux host.
enum HostPlatformFacts {
    /// `PRETTY_NAME` of `/etc/os-release` (e.g. `Debian GNU/Linux 12 (bookworm)`).
    static func osRelease() -> String? {
        guard let bytes = try? LocalFile.read("/etc/os-release") else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
            return String(line.dropFirst("PRETTY_NAME=".count).filter { $0 != "\"" })
        }
        return nil
    }

    /// `uname -r`.
    static func kernel() -> String? {
        var u = utsname()
        guard uname(&u) == 0 else { return nil }
        return withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// The first `model name` of `/proc/cpuinfo`.
    static func cpuModel() -> String? {
        guard let bytes = try? LocalFile.read("/proc/cpuinfo") else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") { return String(line[line.index(after: colon)...].drop { $0 == " " }) }
        }
        return nil
    }
}
#endif
