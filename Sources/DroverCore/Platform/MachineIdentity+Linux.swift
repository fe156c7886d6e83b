#if os(Linux)

import Glibc

/// Linux: systemd's `/etc/machine-id` (else D-Bus's `/var/lib/dbus/machine-id`) and the
/// kernel's per-boot random id.
extension MachineIdentity {
    static func platformMachineID() -> String? {
        firstLine("/etc/machine-id") ?? firstLine("/var/lib/dbus/machine-id")
    }

    static func platformBootID() -> String? {
        firstLine("/proc/sys/kernel/random/boot_id")
    }
}
#endif
