import DroverCoordinator
import Foundation

/// A job: what it runs, every attempt, its output (live with the script), cancel and approve.
struct JobPage {
    let site: Site
    let detail: JobDetail

    /// `withOutput`: also the output as it is now (an SSH round trip when it is not kept here);
    /// left out of the live refreshes, where the script streams it instead.
    func render(withOutput: Bool, now: Double = Date().timeIntervalSince1970) async throws -> String {
        let j = detail.job
        let csrf = site.token.csrf
        var html = "<div id=\"live\"><dl class=\"facts\">"
        func fact(_ k: String, _ v: String) { html += "<dt>\(k)</dt><dd>\(v)</dd>" }
        fact("state", HTML.state(j.state.rawValue) + (j.reason.map { " — " + HTML.escape($0) } ?? ""))
        fact("command", "<code>\(HTML.escape(j.request.commandLine))</code>")
        if let b = j.batch { fact("batch", "<a href=\"/batches/\(HTML.component(b))\">\(HTML.escape(b))</a> / \(HTML.escape(j.batchJob ?? ""))") }
        fact("host", HTML.escape(j.host ?? "-"))
        let r = j.request
        fact("needs", "\(r.slots) slot(s)" + (r.gpus.map { $0 > 0 ? ", \($0) GPU(s)" : "" } ?? ""))
        if let require = r.require, !require.isEmpty {
            fact("requires", require.sorted { $0.key < $1.key }.map { "<code>\(HTML.escape($0.key)) \(HTML.escape($0.value))</code>" }.joined(separator: " "))
        }
        if let c = j.compensation {
            fact("compensation", HTML.state(c.rawValue) + (j.compensationJob.map { " by job <a href=\"/jobs/\($0)\">\($0)</a>" } ?? ""))
        } else if let c = r.compensate {
            fact("compensation", "<code>\(HTML.escape(c.request.commandLine))</code> (runs if the batch fails for good and is compensated)")
        }
        if let o = j.compensates { fact("compensates", "job <a href=\"/jobs/\(o)\">\(o)</a>") }
        fact("submitted", HTML.time(j.submittedAt))
        fact("elapsed", j.elapsed(now: now).map(HTML.duration) ?? "-")
        if j.state.isFinal { fact("exit", HTML.exit(j.exitCode, j.signal)) }
        html += "</dl><div class=\"actions\">"
        if !j.state.isFinal && !j.cancelRequested {
            html += "<form method=\"post\" action=\"/jobs/\(j.id)/cancel?csrf=\(csrf)\"><button id=\"cancel\" class=\"danger\">Cancel job \(j.id)</button></form>"
        } else if j.cancelRequested && !j.state.isFinal {
            html += "<p>cancel requested…</p>"
        }
        if j.state == .failed || (j.state == .cancelled && j.batch != nil) {
            html += "<form method=\"post\" action=\"/jobs/\(j.id)/retry?csrf=\(csrf)\"><button id=\"retry\">Retry job \(j.id)</button></form>"
        }
        if j.state == .approval, let b = j.batch, let bj = j.batchJob {
            html += "<form method=\"post\" action=\"/batches/\(HTML.component(b))/approve/\(HTML.component(bj))?csrf=\(csrf)\"><button id=\"approve\">Approve \(HTML.escape(bj))</button></form>"
        }
        html += "</div><h2>Attempts</h2>" + HTML.table(["attempt", "host", "state", "started", "ended", "exit", "max RSS", "CPU s", "why"], detail.attempts.map { a in
            ["\(a.attempt)", HTML.escape(a.host), HTML.state(a.state) + (a.stale ? " (replaced)" : ""), HTML.time(a.startedAt), HTML.time(a.endedAt),
             HTML.exit(a.exitCode, a.signal), HTML.bytes(a.maxRSSBytes), a.cpuSeconds.map { String(format: "%.2f", $0) } ?? "-",
             HTML.escape([a.agentState, a.reason].compactMap { $0 }.joined(separator: ": "))]
        }, id: "attempts") + "</div>"
        html += "<h2>Output</h2><p class=\"hint\">Shown as text, live while the job runs (with JavaScript), following re-runs on other hosts; plain text: <a href=\"/api/jobs/\(j.id)/output\">/api/jobs/\(j.id)/output</a>.</p>"
        var text = ""
        if withOutput, j.attempt > 0 {
            text = await Self.outputText(site: site, job: j.id, attempt: j.attempt)
        }
        // Never HTML: escaped here, and the script appends with textContent.
        html += "<pre id=\"output\" data-job=\"\(j.id)\">\(HTML.escape(text))</pre>"
        return html
    }

    /// An attempt's output now (stdout then stderr), or why it cannot be shown.
    static func outputText(site: Site, job: Int, attempt: Int, limit: Int = 1 << 20) async -> String {
        var out: [UInt8] = [], err: [UInt8] = []
        do {
            for try await chunk in site.actions.output(job: job, attempt: attempt, follow: false) {
                switch chunk {
                case .stdout(let b): if out.count < limit { out += b }
                case .stderr(let b): if err.count < limit { err += b }
                }
            }
        } catch {
            return "(output not available: \(error))"
        }
        return String(decoding: out, as: UTF8.self) + String(decoding: err, as: UTF8.self)
    }
}
