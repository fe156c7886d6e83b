import DroverCoordinator
import Foundation
import Testing

extension TestbedSuite {
    /// The dashboard in a real browser (headless Chromium) while jobs run on the testbed.
    @Suite("drover serve: the dashboard in a browser", .enabled(if: WebDriver.available, "chromium or chromedriver is not installed: run scripts/setup (apt-get install chromium chromium-driver)"))
    struct BrowserTests {
        @Test func hostsGoDownLiveOutputStreamsAsTextAndCancelWorks() async throws {
            let shots = try Testbed.tempDirectory()
            print("BrowserTests: screenshots in \(shots)")
            try await ServeFixture.with { s in
                let browser = try WebDriver(screenshots: shots)
                defer { browser.quit() }
                try browser.open(s.url)
                try browser.waitFor("the hosts table with 3 hosts up", timeout: 20,
                                    "return document.querySelectorAll('#hosts tbody tr').length === 3 && [...document.querySelectorAll('#hosts tbody tr')].every(r => r.innerText.includes('up'))")
                try browser.waitFor("the page to go live", timeout: 10, "return document.getElementById('conn').textContent === 'live'")
                // Load, memory (a bar) and platform of each host (recorded with the heartbeats and facts).
                #expect(try browser.script("return [...document.querySelectorAll('#hosts thead th')].map(t => t.textContent).join(',')") as? String
                        == "host,state,heartbeat,load,memory,slots,agent,platform and facts,labels,last error")
                try browser.waitFor("every host's load, memory and kernel", timeout: 30,
                                    "return [...document.querySelectorAll('#hosts tbody tr')].every(r => r.cells[4].querySelector('meter') && /^[0-9.]+$/.test(r.cells[3].innerText) && r.cells[7].innerText.includes('kernel '))")
                browser.snap(shots + "/1-overview.png")

                // Live output, as text: a job printing <script> must stay inert.
                let id = try s.coordinator.submit(["sh", "-c", "echo '<script>document.title=\"pwned\"</script><b id=injected>bold</b>'; echo live-start; sleep 1; echo live-mark; exec sleep 300"], options: ["--name", "browser-live"])
                try s.coordinator.waitFor("the job to run", timeout: 60) { try s.coordinator.journal().job(id)?.state == .running }
                try browser.open("http://127.0.0.1:\(s.port)/jobs/\(id)")
                try browser.waitFor("live output", timeout: 30, "return document.getElementById('output').textContent.includes('live-mark')")
                #expect(try browser.script("return document.getElementById('output').textContent.includes('<script>document.title')") as? Bool == true)
                #expect(try browser.script("return document.title.includes('pwned') || document.getElementById('injected') !== null || document.querySelectorAll('#output script, #output b').length > 0") as? Bool == false)
                browser.snap(shots + "/2-job-live-output.png")

                // The cancel button cancels (a form post with the page's CSRF proof).
                try browser.click("#cancel")
                #expect(try s.coordinator.waitFinal([id], timeout: 60).first?.state == .cancelled)
                try browser.waitFor("the job page to say cancelled", timeout: 20, "return document.getElementById('live').innerText.includes('cancelled')")
                browser.snap(shots + "/3-job-cancelled.png")

                // A failed job's Retry button re-drives it (drover retry's code, the page's CSRF proof).
                let failing = try s.coordinator.submit(["false"], options: ["--name", "browser-retry"])
                #expect(try s.coordinator.waitFinal([failing], timeout: 60).first?.state == .failed)
                try browser.open("http://127.0.0.1:\(s.port)/jobs/\(failing)")
                try browser.click("#retry")
                try s.coordinator.waitFor("the retried job's second attempt", timeout: 60) { try s.coordinator.journal().job(failing)?.attempt == 2 }

                // A batch running (for the screenshots: its DAG, its timeline with h3's death).
                let results = try Testbed.tempDirectory()
                defer { try? FileManager.default.removeItem(atPath: results) }
                let chunks = (1...6).map { #"{"id": "chunk-\#($0)", "after": ["prep"], "shell": "sleep 20; echo \#($0)"}"# }.joined(separator: ",")
                let batch = #"{"batch": "sweep", "jobs": [{"id": "prep", "argv": ["true"]}, "# + chunks + #", {"id": "sum", "after": ["chunk-1", "chunk-2", "chunk-3", "chunk-4", "chunk-5", "chunk-6"], "argv": ["true"]}]}"#
                let submitted = try s.post("/api/batches", json: ["content": batch, "file": "sweep.json", "args": ["--results", results]])
                #expect(submitted.status == 200, "\(submitted.text)")
                try s.coordinator.waitFor("a chunk to run on h3", timeout: 60) { try s.coordinator.journal().jobs().contains { $0.state == .running && $0.host == "h3" } }

                // A powered-off host turns down on the open page, without a reload.
                try browser.open("http://127.0.0.1:\(s.port)/")
                try browser.script("window.__noReload = true; return true")
                try await Testbed.withHostKilled("h3") {
                    try browser.waitFor("h3 down on the page", timeout: 60,
                                        "return [...document.querySelectorAll('#hosts tbody tr')].some(r => r.innerText.startsWith('h3') && r.innerText.includes('down'))")
                    #expect(try browser.script("return window.__noReload === true") as? Bool == true, "the page was reloaded")
                    browser.snap(shots + "/4-host-down.png")
                }
                try browser.open("http://127.0.0.1:\(s.port)/batches/sweep")
                browser.snap(shots + "/5-batch.png")
                try browser.open("http://127.0.0.1:\(s.port)/timeline?batch=sweep")
                browser.snap(shots + "/6-timeline.png")
                _ = try s.post("/api/jobs/sweep/cancel", json: [:])
            }
        }
    }
}

extension WebDriver {
    /// A screenshot that never fails the test (a person looks at them; the assertions are above).
    func snap(_ path: String) {
        _ = try? screenshot(path)
    }
}
