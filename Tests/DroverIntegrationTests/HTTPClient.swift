import Foundation

/// A small HTTP/1.1 client over a POSIX socket, for the tests of `drover serve` and of the
/// browser (chromedriver): each request on its own connection (`Connection: close`).
struct HTTPClient {
    let host: String
    let port: Int

    struct Reply {
        var status: Int
        var headers: [(String, String)]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
        func headers(_ name: String) -> [String] { headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1) }
        func json() throws -> Any { try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) }
    }

    /// Sends one request and reads the whole reply (or, with `until`, the reply's body so far
    /// until `until` holds for it or `timeout` passes: for event streams).
    func request(_ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8]? = nil, timeout: Double = 30,
                 until: ((String) -> Bool)? = nil) throws -> Reply {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HTTPClientError("socket: \(errno)") }
        defer { close(fd) }
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { throw HTTPClientError("connect to \(host):\(port): errno \(errno)") }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        let bytes = Array((head + "\r\n").utf8) + (body ?? [])
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw HTTPClientError("send: errno \(errno)") }
            sent += n
        }
        let deadline = Date().addingTimeInterval(timeout)
        var raw: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while Date() < deadline {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { break }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw HTTPClientError("recv: errno \(errno)")
            }
            raw += buffer[0..<n]
            // A server that keeps the connection open (chromedriver) is done once Content-Length bytes came.
            if until == nil, let end = raw.firstRange(of: Array("\r\n\r\n".utf8)),
               let length = String(decoding: raw[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
                .first(where: { $0.lowercased().hasPrefix("content-length:") }).flatMap({ Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) }),
               raw.count - end.upperBound >= length {
                break
            }
            if let until, let partial = try? Self.parse(raw, partial: true), until(partial.text) { return partial }
        }
        if until != nil, Date() >= deadline { throw HTTPClientError("timed out after \(Int(timeout)) s on \(method) \(path); got:\n\(String(decoding: raw.suffix(3000), as: UTF8.self))") }
        return try Self.parse(raw, partial: false)
    }

    static func parse(_ raw: [UInt8], partial: Bool) throws -> Reply {
        guard let end = raw.firstRange(of: Array("\r\n\r\n".utf8)) else { throw HTTPClientError("no complete header") }
        let lines = String(decoding: raw[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        let headers = lines.dropFirst().compactMap { l -> (String, String)? in
            guard let c = l.firstIndex(of: ":") else { return nil }
            return (String(l[..<c]), l[l.index(after: c)...].trimmingCharacters(in: .whitespaces))
        }
        var body = Array(raw[end.upperBound...])
        if headers.contains(where: { $0.0.lowercased() == "transfer-encoding" && $0.1.lowercased() == "chunked" }) { body = dechunk(body) }
        return Reply(status: status, headers: headers, body: body)
    }

    /// The body of a chunked reply (as far as it came).
    static func dechunk(_ b: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [], i = 0
        while let lineEnd = b[i...].firstRange(of: [13, 10]) {
            guard let size = Int(String(decoding: b[i..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? "", radix: 16), size > 0 else { break }
            let start = lineEnd.upperBound
            let stop = min(b.count, start + size)
            out += b[start..<stop]
            i = stop + 2
            if i >= b.count { break }
        }
        return out
    }
}

struct HTTPClientError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
