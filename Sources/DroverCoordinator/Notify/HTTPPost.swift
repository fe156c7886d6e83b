import DroverInventory
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal HTTP/1.1 client for notifications: one POST of a JSON body to an `http://` URL,
/// over a plain socket, bounded by a deadline (connect, send and the status line).
enum HTTPPost {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// POSTs `body` and returns the status code; throws on a network failure or when the
    /// deadline passes.
    static func post(_ body: [UInt8], to url: HTTPURL, timeout: Double) throws(Failure) -> Int {
        let deadline = monotonicNow() + timeout
        let fd = try open(url, deadline: deadline)
        defer { close(fd) }
        var request = "POST \(url.target) HTTP/1.1\r\nHost: \(url.host.contains(":") ? "[\(url.host)]" : url.host):\(url.port)\r\n"
        request += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\nUser-Agent: drover\r\nConnection: close\r\n\r\n"
        try writeAll(Array(request.utf8) + body, fd: fd, deadline: deadline)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !received.contains(10) {
            try waitFor(fd, for: Int16(POLLIN), deadline: deadline)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard n > 0 else { throw Failure(description: "the server closed the connection without an answer") }
            received += buffer[0..<n]
            if received.count > 65536 { break }
        }
        let line = String(decoding: received.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
            throw Failure(description: "not an HTTP answer: \(line.prefix(80))")
        }
        return status
    }

    private static func open(_ url: HTTPURL, deadline: Double) throws(Failure) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(url.host, String(url.port), &hints, &list)
        guard rc == 0, let first = list else { throw Failure(description: "cannot resolve \(url.host): \(String(cString: gai_strerror(rc)))") }
        defer { freeaddrinfo(first) }
        var last = "no address"
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let a = next {
            next = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            if Glibc_connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 { return fd }
            if errno == EINPROGRESS {
                do {
                    try waitFor(fd, for: Int16(POLLOUT), deadline: deadline)
                    var error: Int32 = 0
                    var size = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
                    if error == 0 { return fd }
                    last = String(cString: strerror(error))
                } catch {
                    last = error.description
                }
            } else {
                last = String(cString: strerror(errno))
            }
            close(fd)
        }
        throw Failure(description: "cannot connect to \(url.host):\(url.port): \(last)")
    }

    private static func writeAll(_ bytes: [UInt8], fd: Int32, deadline: Double) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            try waitFor(fd, for: Int16(POLLOUT), deadline: deadline)
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(noSignalFlag)) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw Failure(description: "sending failed: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    private static func waitFor(_ fd: Int32, for events: Int16, deadline: Double) throws(Failure) {
        while true {
            let left = deadline - monotonicNow()
            guard left > 0 else { throw Failure(description: "no answer within the timeout") }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let r = poll(&p, 1, Int32(min(left * 1000 + 1, 3_600_000)))
            if r > 0 { return }
            if r < 0 && errno != EINTR { throw Failure(description: "poll failed: \(String(cString: strerror(errno)))") }
        }
    }

    private static func monotonicNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    #if canImport(Glibc)
    private static let noSignalFlag = Int32(MSG_NOSIGNAL)  // portable: under canImport(Glibc); 0 on Darwin
    private static func Glibc_connect(_ fd: Int32, _ addr: UnsafeMutablePointer<sockaddr>!, _ len: socklen_t) -> Int32 { Glibc.connect(fd, addr, len) }
    #else
    private static let noSignalFlag = Int32(0)
    private static func Glibc_connect(_ fd: Int32, _ addr: UnsafeMutablePointer<sockaddr>!, _ len: socklen_t) -> Int32 { Darwin.connect(fd, addr, len) }
    #endif
}
