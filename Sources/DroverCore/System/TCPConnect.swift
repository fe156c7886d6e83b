#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a TCP connection could not be opened.
public enum TCPConnectError: Error, Sendable, Equatable {
    /// The name did not resolve (getaddrinfo's message).
    case unresolved(String)
    /// No address answered before the deadline.
    case timedOut
    /// The last address tried refused or failed with this errno.
    case failed(errno: Int32)
    /// The name resolved to no usable address.
    case noAddress

    /// One line for a message: `connection refused`, `timed out`, …
    public var reason: String {
        switch self {
        case .unresolved(let m): "cannot resolve: \(m)"
        case .timedOut: "no answer before the deadline"
        case .failed(let e): "\(String(cString: strerror(e))) (errno \(e))"
        case .noAddress: "no usable address"
        }
    }
}

/// Opens a TCP connection to `host:port` — each address getaddrinfo gives, in turn — before
/// `deadline`, and returns its descriptor: non-blocking and close-on-exec. Shared by the SSH
/// connection and the notifications' HTTP client.
public func tcpConnect(host: String, port: Int, deadline: ContinuousClock.Instant) throws(TCPConnectError) -> Int32 {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    #if canImport(Glibc)
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    #else
    hints.ai_socktype = SOCK_STREAM
    #endif
    var list: UnsafeMutablePointer<addrinfo>?
    let gai = getaddrinfo(host, String(port), &hints, &list)
    guard gai == 0, let first = list else { throw .unresolved(String(cString: gai_strerror(gai))) }
    defer { freeaddrinfo(first) }
    var last: TCPConnectError = .noAddress
    var next: UnsafeMutablePointer<addrinfo>? = first
    while let a = next {
        next = a.pointee.ai_next
        let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
        guard fd >= 0 else { continue }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var error: Int32 = 0
        if connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) != 0 {
            error = errno
            if error == EINPROGRESS {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                var ready: Int32 = -1
                repeat {
                    let left = deadline - ContinuousClock.now
                    let ms = Int32(clamping: max(0, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
                    ready = poll(&pfd, 1, ms)
                } while ready < 0 && errno == EINTR
                if ready <= 0 {
                    close(fd)
                    throw .timedOut
                }
                var size = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
            }
        }
        if error == 0 { return fd }
        close(fd)
        last = .failed(errno: error)
    }
    throw last
}
