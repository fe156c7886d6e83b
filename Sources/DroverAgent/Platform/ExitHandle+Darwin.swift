#if !os(Linux)
/// macOS (and other systems): no process descriptor here, so the agent checks adopted shims on
/// a timer (kqueue's EVFILT_PROC could replace it).
enum ExitHandle {
    enum Opened: Equatable {
        case descriptor(Int32)
        case gone
        case unavailable
    }

    static func open(_ pid: Int32) -> Opened { .unavailable }
}
#endif
