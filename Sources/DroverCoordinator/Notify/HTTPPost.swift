import DroverCore
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
        do {
            return try tcpConnect(host: url.host, port: url.port, deadline: ContinuousClock.now + .seconds(max(0, deadline - monotonicNow())))
        } catch {
            throw Failure(description: "cannot connect to \(url.host):\(url.port): \(error.reason)")
        }
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
    #else
    private static let noSignalFlag = Int32(0)
    #endif
}
