#if canImport(Darwin)
import DroverCore
import Darwin

/// OS release, kernel and CPU model of a macOS host.
enum HostPlatformFacts {
    static func osRelease() -> String? { sysctlString("kern.osproductversion").map { "macOS " + $0 } }
    static func kernel() -> String? { sysctlString("kern.osrelease") }
    static func cpuModel() -> String? { sysctlString("machdep.cpu.brand_string") }

    private static func sysctlString(_ name: String) -> String? {
        var size = 0
        guard sysctlbyname(name, nil, &size, nil, 0) == 0, size > 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: size)
        guard sysctlbyname(name, &buffer, &size, nil, 0) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
#endif
