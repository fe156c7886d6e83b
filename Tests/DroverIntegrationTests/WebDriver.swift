import DroverCore
import Foundation

/// Headless Chromium driven over the W3C WebDriver protocol through `chromedriver` (both from
/// Debian: `apt-get install chromium chromium-driver`), with this suite's own HTTP client.
final class WebDriver {
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].first { FileManager.default.isExecutableFile(atPath: $0) }
    /// Whether the browser tests can run here (else they are skipped, and say why).
    static var available: Bool { chromium != nil && chromedriver != nil }

    let pid: pid_t
    let http: HTTPClient
    let session: String
    let profile: String

    init(screenshots: String) throws {
        let port = try Self.freePort()
        profile = try Testbed.tempDirectory()
        pid = try ChildProcess.startDetached([Self.chromedriver!, "--port=\(port)"], output: profile + "/chromedriver.log")
        http = HTTPClient(host: "127.0.0.1", port: port)
        let deadline = Date().addingTimeInterval(20)
        while (try? http.request("GET", "/status", timeout: 2))?.status != 200 {
            if Date() > deadline { kill(pid, SIGKILL); throw HTTPClientError("chromedriver did not start: \((try? String(contentsOfFile: profile + "/chromedriver.log", encoding: .utf8)) ?? "")") }
            usleep(100_000)
        }
        let caps: [String: Any] = ["capabilities": ["alwaysMatch": ["browserName": "chrome", "goog:chromeOptions": [
            "binary": Self.chromium!,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000", "--user-data-dir=\(profile)/profile"],
        ]]]]
        let reply = try http.request("POST", "/session", headers: ["Content-Type": "application/json"], body: Array(try JSONSerialization.data(withJSONObject: caps)), timeout: 60)
        guard let value = (try? reply.json() as? [String: Any])?["value"] as? [String: Any], let id = value["sessionId"] as? String else {
            kill(pid, SIGKILL)
            throw HTTPClientError("no WebDriver session: \(reply.status) \(reply.text.prefix(2000))")
        }
        session = id
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    @discardableResult
    func command(_ method: String, _ path: String, _ body: [String: Any]? = nil) throws -> Any? {
        let data = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) }
        let reply = try http.request(method, "/session/\(session)\(path)", headers: ["Content-Type": "application/json"], body: data ?? (method == "POST" ? Array("{}".utf8) : nil), timeout: 60)
        let value = (try? reply.json() as? [String: Any])?["value"]
        if reply.status != 200 { throw HTTPClientError("WebDriver \(method) \(path): \(reply.status) \(reply.text.prefix(1000))") }
        return value
    }

    func open(_ url: String) throws { try command("POST", "/url", ["url": url]) }

    /// Runs JavaScript in the page and returns its result.
    func script(_ js: String) throws -> Any? { try command("POST", "/execute/sync", ["script": js, "args": []]) }

    func click(_ css: String) throws {
        let found = try command("POST", "/element", ["using": "css selector", "value": css]) as? [String: Any]
        guard let id = found?.values.first as? String else { throw HTTPClientError("no element \(css)") }
        try command("POST", "/element/\(id)/click", [:])
    }

    /// Saves a PNG of the page; its path.
    @discardableResult
    func screenshot(_ path: String) throws -> String {
        guard let b64 = try command("GET", "/screenshot") as? String, let data = Data(base64Encoded: b64) else { throw HTTPClientError("no screenshot") }
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Waits until `js` returns true in the page (no reload), or throws after `timeout`.
    func waitFor(_ what: String, timeout: Double, _ js: String) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while (try? script(js)) as? Bool != true {
            if Date() > deadline { throw HTTPClientError("timed out after \(Int(timeout)) s waiting in the browser for \(what)") }
            usleep(200_000)
        }
    }

    func quit() {
        _ = try? http.request("DELETE", "/session/\(session)", timeout: 10)
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        try? FileManager.default.removeItem(atPath: profile)
    }
}
