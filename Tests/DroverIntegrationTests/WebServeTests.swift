import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    /// `drover serve` over real HTTP, against a real coordinator on the testbed.
    @Suite("drover serve: the HTTP API")
    struct WebServeTests {
        @Test func everyRequestNeedsTheTokenAndActionsWithTheCookieNeedTheCSRFProof() async throws {
            try await ServeFixture.with { s in
                for path in ["/", "/api/hosts", "/api/jobs", "/metrics", "/api/events/stream", "/static/app.js"] {
                    let r = try s.http.request("GET", path)
                    #expect(r.status == 401, "GET \(path) without the token: \(r.status)")
                }
                #expect(try s.http.request("GET", "/api/hosts", headers: ["Authorization": "Bearer wrong"]).status == 401)
                #expect(try s.http.request("POST", "/api/jobs", headers: ["Content-Type": "application/json"], body: Array("{\"args\":[\"--\",\"true\"]}".utf8)).status == 401)
                // The URL's token becomes a cookie, and leaves the address bar.
                let first = try s.http.request("GET", "/?token=\(s.token)")
                #expect(first.status == 303)
                #expect(first.header("Location") == "/")
                let cookie = try #require(first.headers("Set-Cookie").first { $0.hasPrefix("drover_token=") })
                #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
                let jar = ["Cookie": String(cookie.split(separator: ";")[0])]
                let page = try s.http.request("GET", "/", headers: jar)
                #expect(page.status == 200 && page.text.contains("<h2>Hosts</h2>"))
                // A cross-site form would carry the cookie, not the page's proof.
                let forged = try s.http.request("POST", "/api/jobs", headers: jar.merging(["Content-Type": "application/json"]) { a, _ in a },
                                                body: Array("{\"args\":[\"--\",\"true\"]}".utf8))
                #expect(forged.status == 403)
                #expect(try s.coordinator.journal().jobs().isEmpty, "the forged submit queued a job")
                let csrf = try #require(page.text.range(of: "data-csrf=\"").map { String(page.text[$0.upperBound...].prefix(64)) })
                let proper = try s.http.request("POST", "/api/jobs", headers: jar.merging(["Content-Type": "application/json", "X-Drover-CSRF": csrf]) { a, _ in a },
                                                body: Array("{\"args\":[\"--name\",\"with-proof\",\"--\",\"true\"]}".utf8))
                #expect(proper.status == 200, "\(proper.text)")
                // The token file is the server's secret: 0600.
                var st = stat()
                #expect(stat(s.coordinator.state + "/web-token", &st) == 0 && st.st_mode & 0o777 == 0o600)
            }
        }

        @Test func jobsHostsAttemptsOutputAndEventsAndOutputIsNeverHTML() async throws {
            try await ServeFixture.with { s in
                let hosts = try #require(try s.get("/api/hosts").json() as? [[String: Any]])
                #expect(Set(hosts.compactMap { $0["name"] as? String }).isSuperset(of: ["h1", "h2", "h3"]))
                #expect(hosts.allSatisfy { $0["heartbeatAge"] is Double })
                let submitted = try s.post("/api/jobs", json: ["args": ["--name", "xss", "--shell", "--", "echo '<script>document.title=\"pwned\"</script>'; echo to-stderr >&2"]])
                #expect(submitted.status == 200, "\(submitted.text)")
                let id = try #require((try submitted.json() as? [String: Any])?["job"] as? Int)
                _ = try s.coordinator.waitFinal([id], timeout: 60)
                let detail = try #require(try s.get("/api/jobs/\(id)").json() as? [String: Any])
                #expect((detail["job"] as? [String: Any])?["state"] as? String == "succeeded")
                let attempts = try #require(try s.get("/api/jobs/\(id)/attempts").json() as? [[String: Any]])
                #expect(attempts.count == 1 && attempts[0]["exitCode"] as? Int == 0)
                let output = try s.get("/api/jobs/\(id)/output")
                #expect(output.header("Content-Type")?.hasPrefix("text/plain") == true)
                #expect(output.text.contains("<script>document.title=\"pwned\"</script>") && output.text.contains("to-stderr"))
                #expect(try s.get("/api/jobs/\(id)/output?stream=stdout").text.contains("to-stderr") == false)
                let page = try s.get("/jobs/\(id)")
                #expect(page.text.contains("&lt;script&gt;document.title"))
                #expect(!page.text.contains("<script>document.title"), "job output reached the page as HTML")
                #expect(page.header("Content-Security-Policy")?.contains("default-src 'self'") == true)
                let filtered = try #require(try s.get("/api/jobs?name=xss&state=succeeded").json() as? [[String: Any]])
                #expect(filtered.map { $0["id"] as? Int } == [id])
                #expect((try s.get("/api/jobs?state=failed").json() as? [Any])?.isEmpty == true)
                let events = try #require(try s.get("/api/events?job=\(id)").json() as? [[String: Any]])
                #expect(!events.isEmpty && events.allSatisfy { $0["job"] as? Int == id })
                for path in ["/", "/jobs", "/jobs?state=succeeded", "/timeline", "/events", "/static/app.css"] { _ = try s.get(path) }
                _ = try s.get("/api/jobs/999999", expect: 404)
            }
        }

        @Test func aBadBatchIsRefusedWithTheCLIsMessageAndAGoodOneRuns() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let bad = #"{"batch": "broken", "jobs": [{"id": "a", "after": ["nowhere"], "argv": ["true"]}, {"id": "a", "argv": 3}]}"#
            let path = try files.write("broken.json", bad)
            try await ServeFixture.with { s in
                let cli = try s.coordinator.drover(["submit", path])
                #expect(cli.status == 2)
                let reply = try s.post("/api/batches", json: ["content": bad, "file": path])
                #expect(reply.status == 400)
                let message = try #require((try reply.json() as? [String: Any])?["error"] as? String)
                let lines = message.split(separator: "\n", omittingEmptySubsequences: false)
                let printed = "drover: error: " + lines[0] + "\n" + lines.dropFirst().map { "  " + $0 + "\n" }.joined()
                #expect(printed == cli.stderr, "API: \(message)\nCLI: \(cli.stderr)")
                #expect(try s.coordinator.journal().batches().isEmpty)
                let good = #"{"batch": "webdag", "jobs": [{"id": "one", "argv": ["true"]}, {"id": "two", "after": ["one"], "shell": "echo boom >&2; exit 3"}, {"id": "three", "after": ["two"], "argv": ["true"]}]}"#
                let ok = try s.post("/api/batches", json: ["content": good, "file": "webdag.json", "args": ["--results", files.results]])
                #expect(ok.status == 200, "\(ok.text)")
                let ids = try #require((try ok.json() as? [String: Any])?["jobs"] as? [String: Int])
                _ = try s.coordinator.waitFinal(Array(ids.values), timeout: 60)
                let batch = try #require(try s.get("/api/batches/webdag").json() as? [String: Any])
                #expect(((batch["batch"] as? [String: Any])?["states"] as? [String: Int]) == ["succeeded": 1, "failed": 1, "skipped": 1])
                let page = try s.get("/batches/webdag").text
                #expect(page.contains("<svg class=\"dag\"") && page.contains("boom") && page.contains("✕ failed"))
                #expect(try s.get("/timeline?batch=webdag").text.contains("<svg class=\"timeline\""))
                // `drover retry webdag` through the API: the failed job again, the skipped one waits again.
                let retried = try s.post("/api/batches/webdag/retry", json: [:])
                #expect(retried.status == 200, "\(retried.text)")
                let outcome = (try retried.json() as? [String: Any])?["retried"] as? [[String: Any]] ?? []
                #expect(outcome.count == 1 && outcome.first?["job"] as? Int == ids["two"] && outcome.first?["released"] as? [String] == ["webdag/three"], "\(retried.text)")
                _ = try s.coordinator.waitFinal(Array(ids.values), timeout: 60)
                #expect(try s.coordinator.journal().job(ids["two"]!)?.attempt == 2)
                let bad2 = try s.post("/api/jobs", json: ["args": ["--slots", "0", "--", "true"]])
                #expect(bad2.status == 400 && bad2.text.contains("--slots must be 1 or more"))
                let nowhere = try s.post("/api/jobs", json: ["args": ["--host", "nosuchhost", "--", "true"]])
                let cliNowhere = try s.coordinator.drover(["submit", "--host", "nosuchhost", "--", "true"])
                let nowhereMessage = (try nowhere.json() as? [String: Any])?["error"] as? String ?? "?"
                #expect(nowhere.status == 400 && cliNowhere.stderr.contains(nowhereMessage), "API: \(nowhereMessage)\nCLI: \(cliNowhere.stderr)")
            }
        }

        @Test func theEventStreamResumesAfterTheLastEventID() async throws {
            try await ServeFixture.with { s in
                let id = try s.coordinator.submit(["true"])
                _ = try s.coordinator.waitFinal([id], timeout: 60)
                let all = try #require(try s.get("/api/events").json() as? [[String: Any]]).compactMap { $0["id"] as? Int }
                #expect(all.count >= 3)
                let from = all[all.count - 3]
                let reply = try s.http.request("GET", "/api/events/stream", headers: s.bearer.merging(["Last-Event-ID": "\(from)"]) { a, _ in a },
                                               timeout: 20, until: { $0.contains("id: \(all.last!)\n") })
                let streamed = reply.text.split(separator: "\n").filter { $0.hasPrefix("id: ") }.compactMap { Int($0.dropFirst(4)) }
                #expect(streamed.first == all[all.count - 2], "resumed at \(streamed.first ?? -1), expected \(all[all.count - 2])")
                #expect(Array(streamed.prefix(2)) == Array(all.suffix(2)))
                // Live: an event committed after the stream opened arrives on it.
                let last = try s.coordinator.journal().lastEventID()
                let (http, bearer) = (s.http, s.bearer)
                let later = Task { try http.request("GET", "/api/events/stream?after=now", headers: bearer, timeout: 30, until: { $0.contains("live-one") }) }
                let next = try s.coordinator.submit(["echo", "live-one"])
                let live = try await later.value
                #expect(live.text.contains("event: audit"))
                #expect(live.text.split(separator: "\n").filter { $0.hasPrefix("id: ") }.allSatisfy { Int($0.dropFirst(4))! > last })
                _ = try s.coordinator.waitFinal([next], timeout: 60)
            }
        }

        @Test func metricsParseAsPrometheusTextAndMatchDroverPs() async throws {
            try await ServeFixture.with { s in
                let ok = try s.coordinator.submit(["true"]), bad = try s.coordinator.submit(["false"])
                _ = try s.coordinator.waitFinal([ok, bad], timeout: 60)
                let running = try s.coordinator.submit(["sleep", "300"])
                try s.coordinator.waitFor("the sleep to run", timeout: 60) { try s.coordinator.journal().job(running)?.state == .running }
                let reply = try s.get("/metrics")
                #expect(reply.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
                let sample = try Regex(#"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?[0-9.e+Inf]+$"#)
                var jobs: [String: Int] = [:]
                for line in reply.text.split(separator: "\n") {
                    if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") { continue }
                    #expect(line.wholeMatch(of: sample) != nil, "not Prometheus text: \(line)")
                    if line.hasPrefix("drover_jobs{state=\"") {
                        let state = line.dropFirst("drover_jobs{state=\"".count).prefix { $0 != "\"" }
                        jobs[String(state)] = Int(line.split(separator: " ").last!)
                    }
                }
                let ps = try s.coordinator.droverState(["ps", "--all", "--json"])
                let listed = try #require(try JSONSerialization.jsonObject(with: Data(ps.stdout.utf8)) as? [[String: Any]])
                let counted = Dictionary(grouping: listed, by: { $0["state"] as? String ?? "?" }).mapValues(\.count)
                #expect(jobs.filter { $0.value > 0 } == counted, "metrics \(jobs) vs ps \(counted)")
                #expect(jobs["running"] == 1 && jobs["failed"] == 1 && jobs["succeeded"] == 1)
                #expect(reply.text.contains("drover_hosts{state=\"up\"} 3"))
                #expect(reply.text.contains("drover_dispatch_latency_seconds_count 3"))
                // Cancel through the API (bearer: no CSRF proof needed), confirmed by the journal.
                let cancelled = try s.post("/api/jobs/\(running)/cancel", json: [:])
                #expect(cancelled.status == 200, "\(cancelled.text)")
                #expect(try s.coordinator.waitFinal([running], timeout: 60).first?.state == .cancelled)
            }
        }

        @Test func anotherAddressIsWarnedAboutAndTLSIsRefusedClearly() throws {
            let state = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: state) }
            let tls = try Testbed.run(Testbed.droverBinary, ["serve", "--state", state, "--tls-cert", "c.pem", "--tls-key", "k.pem"])
            #expect(tls.status != 0 && tls.stderr.contains("does not speak TLS") && tls.stderr.contains("ssh -L"), "\(tls.stderr)")
            let log = state + "/serve.log"
            let pid = try ChildProcess.startDetached([Testbed.droverBinary, "serve", "--state", state, "--listen", "0.0.0.0:0"], output: log)
            defer { kill(pid, SIGKILL); var st: Int32 = 0; waitpid(pid, &st, 0) }
            let deadline = Date().addingTimeInterval(20)
            var text = ""
            while !text.contains("open http://"), Date() < deadline {
                usleep(50_000)
                text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            }
            #expect(text.contains("unencrypted") && text.contains("ssh -L"), "\(text)")
            #expect(text.contains("open http://0.0.0.0:"))
        }

        @Test func theNotebookClientSubmitsWaitsAndStreamsOutput() async throws {
            try await ServeFixture.with { s in
                let client = Testbed.repoRoot + "/examples/notebook-client.py"
                let r = try Testbed.run("/usr/bin/env", ["python3", client, "--url", "http://127.0.0.1:\(s.port)", "--token", s.token,
                                                         "run", "--", "sh", "-c", "echo notebook-hello; echo notebook-err >&2"])
                #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
                #expect(r.stdout.contains("notebook-hello"))
                #expect(r.stdout.contains("succeeded"))
                let jobs = try s.coordinator.journal().jobs()
                #expect(jobs.count == 1 && jobs[0].state == .succeeded)
            }
        }
    }
}
