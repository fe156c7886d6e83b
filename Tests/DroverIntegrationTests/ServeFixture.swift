import DroverCoordinator
import DroverCore
import Foundation
import Testing

/// `drover serve` started on the testbed coordinator's state, on a free port, stopped by the test.
final class ServeFixture {
    let coordinator: CoordinatorFixture
    let pid: pid_t
    let port: Int
    let token: String
    let url: String

    init(_ coordinator: CoordinatorFixture) throws {
        self.coordinator = coordinator
        let log = coordinator.state + "/serve.log"
        pid = try ChildProcess.startDetached([Testbed.droverBinary, "serve", "--state", coordinator.state, "--inventory", coordinator.inventory,
                                              "--listen", "127.0.0.1:0"], output: log)
        var line = ""
        do {
            try coordinator.waitFor("drover serve to print its URL", timeout: 20) {
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                guard let l = text.split(separator: "\n").first(where: { $0.contains("open http://") }) else { return false }
                line = String(l)
                return true
            }
        } catch {
            kill(pid, SIGKILL)
            throw error
        }
        url = String(line[line.range(of: "http://")!.lowerBound...])
        let afterHost = url.dropFirst("http://127.0.0.1:".count)
        port = Int(afterHost.prefix { $0.isNumber }) ?? 0
        token = String(url[url.range(of: "token=")!.upperBound...])
    }

    var http: HTTPClient { HTTPClient(host: "127.0.0.1", port: port) }
    var bearer: [String: String] { ["Authorization": "Bearer \(token)"] }

    /// GET with the bearer token; fails the test on a status other than `expect`.
    func get(_ path: String, expect: Int = 200) throws -> HTTPClient.Reply {
        let r = try http.request("GET", path, headers: bearer)
        #expect(r.status == expect, "GET \(path): \(r.status) \(r.text.prefix(500))")
        return r
    }

    func post(_ path: String, json: Any) throws -> HTTPClient.Reply {
        let body = try JSONSerialization.data(withJSONObject: json)
        return try http.request("POST", path, headers: bearer.merging(["Content-Type": "application/json"]) { a, _ in a }, body: Array(body))
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<200 {
            if waitpid(pid, &status, WNOHANG) == pid { return }
            usleep(25_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
    }

    /// A coordinator on the testbed with `drover serve` over it, both stopped afterwards.
    static func with(_ body: (ServeFixture) async throws -> Void) async throws {
        try await CoordinatorFixture.with(deadAfter: 5) { c in
            let s = try ServeFixture(c)
            defer { s.stop() }
            try await body(s)
        }
    }
}
