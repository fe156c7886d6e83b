import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    /// `drover serve`: what landed after its first round (issue 16): hosts' load, memory,
    /// platform and quarantine; the Retry button; sagas, GPUs and required facts.
    @Suite("drover serve: hosts' load and platform, retry, sagas")
    struct WebServeMoreTests {
        @Test func hostsShowLoadMemoryPlatformAndTheQuarantineReason() async throws {
            try await ServeFixture.with { s in
                // The testbed's hosts are namespaces of this machine: same kernel, same memory.
                let meminfo = try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
                let totalKB = try #require(meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }?.split(separator: " ").dropFirst().first.flatMap { Int($0) })
                var u = utsname()
                uname(&u)
                let kernel = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                var hosts: [[String: Any]] = []
                try s.coordinator.waitFor("load, memory and platform of every host in /api/hosts", timeout: 60) {
                    hosts = (try s.get("/api/hosts").json() as? [[String: Any]]) ?? []
                    return hosts.count >= 3 && hosts.allSatisfy { $0["load1"] is Double && $0["memoryAvailableBytes"] is Int && ($0["platform"] as? [String: Any])?["kernel"] != nil }
                }
                for h in hosts {
                    let available = h["memoryAvailableBytes"] as? Int ?? 0, total = h["memoryTotalBytes"] as? Int ?? 0
                    #expect(total == totalKB * 1024, "\(h["name"] ?? "?"): total memory \(total), /proc/meminfo says \(totalKB) kB")
                    #expect(available > 0 && available <= total)
                    #expect((h["load1"] as? Double ?? -1) >= 0)
                    #expect((h["platform"] as? [String: Any])?["kernel"] as? String == kernel)
                }
                let metrics = try s.get("/metrics").text
                for name in ["h1", "h2", "h3"] {
                    #expect(metrics.contains("drover_host_load1{host=\"\(name)\"} "), "no load1 of \(name)")
                    #expect(metrics.contains("drover_host_memory_available_bytes{host=\"\(name)\"} "), "no memory of \(name)")
                    #expect(metrics.contains("drover_host_memory_total_bytes{host=\"\(name)\"} \(totalKB * 1024)\n"))
                }
                var page = try s.get("/").text
                #expect(page.contains("<th scope=\"col\">load</th>") && page.contains("<th scope=\"col\">memory</th>") && page.contains("<th scope=\"col\">platform and facts</th>"))
                #expect(page.contains("kernel " + kernel) && page.contains(" free of "))
                // A host quarantined by hand: its state and reason, on the page and in the API.
                let q = try Testbed.run(Testbed.droverBinary, ["hosts", "quarantine", "h2", "--reason", "fan <failing>", "--state", s.coordinator.state, "--inventory", s.coordinator.inventory])
                #expect(q.status == 0, "\(q.stderr)")
                let h2 = try #require((try s.get("/api/hosts").json() as? [[String: Any]])?.first { $0["name"] as? String == "h2" })
                let quarantine = try #require(h2["quarantine"] as? [String: Any])
                #expect(quarantine["state"] as? String == "manual" && (quarantine["reason"] as? String)?.contains("fan <failing>") == true)
                #expect(hosts.first { $0["name"] as? String == "h1" }?["quarantine"] == nil)
                page = try s.get("/").text
                #expect(page.contains("⊘ quarantined</span> <small class=\"why\">(manual: fan &lt;failing&gt;"), "no quarantine reason on the page")
            }
        }

        @Test func aFailedJobsRetryButtonRedrivesItBehindTheCSRFProof() async throws {
            try await ServeFixture.with { s in
                let id = try s.coordinator.submit(["false"])
                #expect(try s.coordinator.waitFinal([id], timeout: 60).first?.state == .failed)
                let first = try s.http.request("GET", "/?token=\(s.token)")
                let cookie = try #require(first.headers("Set-Cookie").first { $0.hasPrefix("drover_token=") })
                let jar = ["Cookie": String(cookie.split(separator: ";")[0])]
                let page = try s.http.request("GET", "/jobs/\(id)", headers: jar).text
                #expect(page.contains("<button id=\"retry\">Retry job \(id)</button>"), "no Retry button on a failed job's page")
                let csrf = try #require(page.range(of: "data-csrf=\"").map { String(page[$0.upperBound...].prefix(64)) })
                // Without the page's proof (a cross-site form): refused, nothing re-driven.
                #expect(try s.http.request("POST", "/jobs/\(id)/retry", headers: jar).status == 403)
                #expect(try s.coordinator.journal().job(id)?.attempt == 1)
                let pressed = try s.http.request("POST", "/jobs/\(id)/retry?csrf=\(csrf)", headers: jar)
                #expect(pressed.status == 303 && pressed.header("Location") == "/jobs/\(id)")
                try s.coordinator.waitFor("the re-driven job's second attempt to fail", timeout: 60) {
                    let j = try s.coordinator.journal().job(id)
                    return j?.attempt == 2 && j?.state == .failed
                }
                let events = try #require(try s.get("/api/events?job=\(id)").json() as? [[String: Any]])
                #expect(events.contains { ($0["message"] as? String)?.contains("web:") == true }, "the audit trail does not say the dashboard re-drove it")
                // The API: the same code as `drover retry`, and its refusal for a job that did not fail.
                let api = try s.post("/api/jobs/\(id)/retry", json: [:])
                #expect(api.status == 200, "\(api.text)")
                #expect(((try api.json() as? [String: Any])?["retried"] as? [[String: Any]])?.first?["job"] as? Int == id)
                _ = try s.coordinator.waitFinal([id], timeout: 60)
                let ok = try s.coordinator.submit(["true"])
                _ = try s.coordinator.waitFinal([ok], timeout: 60)
                #expect(!(try s.get("/jobs/\(ok)").text.contains("id=\"retry\"")))
                let refused = try s.post("/api/jobs/\(ok)/retry", json: [:])
                #expect(refused.status == 409 && refused.text.contains("not retried: it is succeeded"), "\(refused.status) \(refused.text)")
            }
        }

        @Test func liveViewersOfOneHostShareOneSSHConnection() async throws {
            try await ServeFixture.with { s in
                let fifo = "/tmp/drover-shared-\(UUID().uuidString.prefix(8))"
                let id = try s.coordinator.submit(["sh", "-c", "mkfifo \(fifo); echo shared-start; read x < \(fifo); echo shared-end; rm -f \(fifo); exec sleep 300"],
                                                  options: ["--host", "h1"])
                try s.coordinator.waitFor("the job to run", timeout: 60) { try s.coordinator.journal().job(id)?.state == .running }
                let (http, bearer) = (s.http, s.bearer)
                let viewers = (0..<3).map { _ in
                    // Each on a thread of its own: a blocking read on the test's few cooperative threads would starve the test.
                    Task { try await onThread { try http.request("GET", "/api/jobs/\(id)/output/stream", headers: bearer, timeout: 60, until: { $0.contains("shared-end") }) } }
                }
                let h1 = try await Testbed.connect("h1")
                // Each viewer's `drover-agent output --follow` on h1, and the sshd (one per connection) it runs under.
                let probe = #"for p in $(pgrep -f '[d]rover-agent-[^ ]* output .*--follow'); do case $(cat /proc/$p/comm) in drover-agent*) ;; *) continue;; esac; q=$p; while [ "$q" -gt 1 ]; do case $(cat /proc/$q/comm) in sshd*) echo "$p $q"; break;; esac; q=$(cut -d' ' -f4 /proc/$q/stat); done; done"#
                var lines: [Substring] = []
                let deadline = Date().addingTimeInterval(30)
                while true {
                    lines = String(decoding: try await h1.run(probe, timeout: 10).stdout, as: UTF8.self).split(separator: "\n")
                    if Set(lines.compactMap { $0.split(separator: " ").first }).count >= 3 { break }
                    guard Date() < deadline else { throw TestbedError("timed out waiting for 3 viewers' output commands on h1: \(lines)") }
                    try await Task.sleep(for: .milliseconds(50))
                }
                let connections = Set(lines.compactMap { $0.split(separator: " ").last })
                #expect(connections.count == 1, "the viewers' output commands run under \(connections.count) SSH connections: \(lines)")
                _ = try await h1.run("echo go > \(fifo)", timeout: 10)
                for v in viewers {
                    let reply = try await v.value
                    #expect(reply.text.contains("shared-start") && reply.text.contains("shared-end"))
                }
                await h1.shutdown()
                _ = try s.post("/api/jobs/\(id)/cancel", json: [:])
                _ = try s.coordinator.waitFinal([id], timeout: 60)
            }
        }

        @Test func theBatchPageShowsTheSagaAndTheJobPageGPUsAndRequiredFacts() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            try await ServeFixture.with { s in
                let saga = #"{"batch": "websaga", "policy": "compensate-on-failure", "jobs": [{"id": "reserve", "argv": ["true"], "compensate": {"argv": ["true"]}}, {"id": "publish", "after": ["reserve"], "argv": ["false"]}]}"#
                let ok = try s.post("/api/batches", json: ["content": saga, "file": "websaga.json", "args": ["--results", files.results]])
                #expect(ok.status == 200, "\(ok.text)")
                try s.coordinator.waitFor("the saga to compensate", timeout: 90) {
                    let b = (try s.get("/api/batches/websaga").json() as? [String: Any])?["batch"] as? [String: Any]
                    return b?["saga"] as? String == "compensated"
                }
                let batch = try #require((try s.get("/api/batches/websaga").json() as? [String: Any])?["batch"] as? [String: Any])
                #expect(batch["compensations"] as? [String: Int] == ["compensated": 1] && batch["compensateOnFailure"] as? Bool == true)
                let page = try s.get("/batches/websaga").text
                #expect(page.contains("<p id=\"saga\">saga: <span class=\"st st-compensated\">↩ compensated</span>"), "no saga summary")
                #expect(page.contains("<table id=\"compensations\"") && page.contains("succeeded ↩ compensated"))
                let reserve = try #require(try s.coordinator.journal().jobs().first { $0.batchJob == "reserve" && $0.compensates == nil })
                let jobPage = try s.get("/jobs/\(reserve.id)").text
                #expect(jobPage.contains("<dt>compensation</dt><dd><span class=\"st st-compensated\">↩ compensated</span> by job"))
                // GPUs and required facts (no testbed host has a GPU: it waits).
                let gpu = try s.coordinator.submit(["true"], options: ["--gpus", "1", "--require", "kernel"])
                let gpuPage = try s.get("/jobs/\(gpu)").text
                #expect(gpuPage.contains("<dt>needs</dt><dd>1 slot(s), 1 GPU(s)</dd>") && gpuPage.contains("<dt>requires</dt><dd><code>kernel *</code>"), "\(gpuPage.prefix(1500))")
                _ = try s.post("/api/jobs/\(gpu)/cancel", json: [:])
                _ = try s.coordinator.waitFinal([gpu], timeout: 60)
            }
        }
    }
}

/// Runs a blocking `body` on a thread of its own.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        Thread { c.resume(with: Result { try body() }) }.start()
    }
}
