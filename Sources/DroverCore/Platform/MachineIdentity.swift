
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which machine and which boot this process runs in: what a state directory's owner record
/// (`owner.json`) and the heartbeat carry, so that hosts sharing a home (NFS) never run in
/// each other's state directory, and two inventory names for one machine are recognised.
///
/// One implementation per OS (`MachineIdentity+Linux.swift`, `MachineIdentity+Darwin.swift`);
/// elsewhere the host name stands in for the machine id and there is no boot id.
public struct MachineIdentity: Sendable, Equatable {
    /// Stable for the life of the OS installation (`/etc/machine-id` on Linux, `kern.uuid` on macOS).
    public var machineID: String
    /// Changes on every boot (`/proc/sys/kernel/random/boot_id`, `kern.boottime`).
    public var bootID: String
    /// For people reading the records (never compared).
    public var hostname: String

    public init(machineID: String, bootID: String, hostname: String) {
        self.machineID = machineID
        self.bootID = bootID
        self.hostname = hostname
    }

    /// This machine, read once per process.
    public static let current = MachineIdentity(machineID: platformMachineID() ?? "host:" + localHostname(),
                                         bootID: platformBootID() ?? "", hostname: localHostname())

    /// How it reads in messages: `box1 (machine id 3d1219c7c4c5…)`.
    public var described: String { "\(hostname) (machine id \(machineID.prefix(12))\(machineID.count > 12 ? "…" : ""))" }

    /// `uname -n`.
    public static func localHostname() -> String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: u.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// The first line of a small file, trimmed; nil when missing or empty.
    static func firstLine(_ path: String) -> String? {
        guard let b = try? LocalFile.read(path) else { return nil }
        let blank: Set<UInt8> = [0x20, 0x09, 0x0D]
        let bytes = b.prefix { $0 != UInt8(ascii: "\n") }
        let line = String(decoding: bytes.drop { blank.contains($0) }.reversed().drop { blank.contains($0) }.reversed(), as: UTF8.self)
        return line.isEmpty ? nil : line
    }

    #if !os(Linux) && !os(macOS)
    static func platformMachineID() -> String? { nil }
    static func platformBootID() -> String? { nil }
    #endif
}
