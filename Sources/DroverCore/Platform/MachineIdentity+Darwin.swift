#if os(macOS)
import Darwin


/// macOS: the kernel's `kern.uuid` (the hardware UUID) and `kern.boottime` (seconds and
/// microseconds of the boot, which differ on every boot).
///
/// Written against the macOS SDK; Linux CI does not compile it.
extension MachineIdentity {
    static func platformMachineID() -> String? {
        var size = 0
        guard sysctlbyname("kern.uuid", nil, &size, nil, 0) == 0, size > 1 else { return nil }
        var buffer = [CChar](repeating: 0, count: size)
        guard sysctlbyname("kern.uuid", &buffer, &size, nil, 0) == 0 else { return nil }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.isEmpty ? nil : text
    }

    static func platformBootID() -> String? {
        var tv = timeval()
        var size = MemoryLayout<timeval>.size
        guard sysctlbyname("kern.boottime", &tv, &size, nil, 0) == 0 else { return nil }
        return "\(tv.tv_sec).\(tv.tv_usec)"
    }
}
#endif
