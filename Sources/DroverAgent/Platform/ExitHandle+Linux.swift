#if os(Linux)
import CDroverSys
import DroverCore
import Glibc

/// Linux: a pidfd (`pidfd_open`, kernel 5.3 and later), readable once the process has exited.
enum ExitHandle {
    enum Opened: Equatable {
        /// Poll this descriptor (close it when done).
        case descriptor(Int32)
        /// The process is gone already.
        case gone
        /// This kernel has no pidfd: check on a timer instead.
        case unavailable
    }

    /// `DROVER_AGENT_PIDFD=off` acts as a kernel without pidfd (tests use it for the timer).
    static let disabled = LocalUser.environment("DROVER_AGENT_PIDFD") == "off"

    static func open(_ pid: pid_t) -> Opened {
        if disabled { return .unavailable }
        let fd = drover_open_exit_handle(pid)
        if fd >= 0 { return .descriptor(fd) }
        return errno == ESRCH ? .gone : .unavailable
    }
}
#endif
