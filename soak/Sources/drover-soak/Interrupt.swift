#if canImport(Glibc)
import Glibc
#endif

/// Ctrl-C and SIGTERM: the run stops injecting and submitting, and cleans up before it exits.
enum Interrupt {
    nonisolated(unsafe) static var requested: sig_atomic_t = 0

    static func install() {
        signal(SIGINT) { _ in Interrupt.requested = 1 }
        signal(SIGTERM) { _ in Interrupt.requested = 1 }
        signal(SIGPIPE, SIG_IGN)
    }

    static var pending: Bool { requested != 0 }
}
