import DroverCoordinator
import Foundation

/// A batch: progress, its dependency graph, its failures with the head of their stderr, its report.
struct BatchPage {
    let site: Site
    let batch: BatchView
    let jobs: [JobRecord]

    func render(now: Double = Date().timeIntervalSince1970) async throws -> String {
        let csrf = site.token.csrf
        var html = "<div id=\"live\"><p><progress max=\"\(max(1, batch.total))\" value=\"\(batch.done)\"></progress> \(batch.done) of \(batch.total) job(s) over — "
        html += batch.states.sorted { $0.key < $1.key }.map { "\(HTML.state($0.key)) \($0.value)" }.joined(separator: ", ")
        html += batch.finishedAt == nil ? " — running" : " — finished \(HTML.time(batch.finishedAt))"
        html += "</p><p>Results in <code>\(HTML.escape(batch.results))</code>. <a href=\"/timeline?batch=\(HTML.component(batch.name))\">Timeline of this batch</a> · <a href=\"/jobs?batch=\(HTML.component(batch.name))\">its jobs</a></p>"
        for j in jobs where j.state == .approval {
            html += "<form method=\"post\" action=\"/batches/\(HTML.component(batch.name))/approve/\(HTML.component(j.batchJob ?? ""))?csrf=\(csrf)\"><button>Approve \(HTML.escape(j.batchJob ?? ""))</button></form>"
        }
        html += sagaSection()
        html += "<h2>Dependency graph</h2>" + DAGView.svg(jobs)
        let failed = jobs.filter { $0.state == .failed }
        html += "<h2>Failures (\(failed.count))</h2>"
        if failed.isEmpty { html += "<p>none</p>" }
        for j in failed.prefix(10) {
            let head = await stderrHead(j)
            html += "<h3>\(HTML.jobLink(j)) \(HTML.escape(j.batchJob ?? "")) — \(HTML.exit(j.exitCode, j.signal)) on \(HTML.escape(j.host ?? "-"))\(j.reason.map { ": " + HTML.escape($0) } ?? "")</h3><pre class=\"stderr\">\(HTML.escape(head))</pre>"
        }
        if failed.count > 10 { html += "<p>… and \(failed.count - 10) more: <a href=\"/jobs?batch=\(HTML.component(batch.name))&amp;state=failed\">all failures</a></p>" }
        if let record = try site.access.read({ try $0.batch(named: batch.name) }) {
            let report = try site.access.read { try BatchReport.build($0, batch: record) }
            html += "<h2>Report</h2><p>span \(HTML.duration(report.span)), \(report.count(.succeeded)) succeeded, \(report.count(.failed)) failed, \(report.count(.skipped)) skipped, \(report.count(.cancelled)) cancelled (also <code>\(HTML.escape(batch.results))/report.json</code>)</p>"
            html += HTML.table(["host", "slots", "attempts", "succeeded", "busy slot-s", "CPU s"], report.hosts.map { h in
                [HTML.escape(h.name), h.slots.map(String.init) ?? "-", "\(h.attempts)", "\(h.succeeded)", String(format: "%.0f", h.busySeconds), String(format: "%.1f", h.cpuSeconds)]
            })
        }
        return html + "</div>"
    }

    /// The saga: its state, and each compensated job with its compensation's state and job.
    func sagaSection() -> String {
        let undoable = jobs.filter { $0.request.compensate != nil }
        guard batch.saga != nil || batch.compensateOnFailure || !undoable.isEmpty else { return "" }
        var html = "<h2>Compensation</h2><p id=\"saga\">saga: " + (batch.saga.map(HTML.state) ?? "not started")
        html += batch.compensateOnFailure ? " (compensate-on-failure: started when the batch fails for good)" : " (started by <code>drover compensate \(HTML.escape(batch.name))</code>)"
        html += "; \(undoable.count) job(s) with a compensation"
        if !batch.compensations.isEmpty {
            html += ": " + batch.compensations.sorted { $0.key < $1.key }.map { "\(HTML.state($0.key)) \($0.value)" }.joined(separator: ", ")
        }
        html += "</p>"
        if batch.saga == "stopped" || batch.compensations["compensation_failed"] != nil {
            html += "<p>A compensation failed: fix its cause, then <code>drover compensate \(HTML.escape(batch.name)) --resume</code>.</p>"
        }
        let rows = jobs.filter { $0.compensation != nil }.map { j -> [String] in
            [HTML.jobLink(j), HTML.escape(j.batchJob ?? "-"), HTML.state(j.state.rawValue), j.compensation.map { HTML.state($0.rawValue) } ?? "-",
             j.compensationJob.map { "<a href=\"/jobs/\($0)\">\($0)</a>" } ?? "-"]
        }
        if !rows.isEmpty { html += HTML.table(["id", "job", "state", "compensation", "compensation job"], rows, id: "compensations") }
        return html
    }

    /// The first lines of the failed attempt's stderr.
    private func stderrHead(_ j: JobRecord, bytes: Int = 2_000) async -> String {
        guard j.attempt > 0 else { return "(it never started)" }
        var err: [UInt8] = []
        do {
            for try await chunk in site.actions.output(job: j.id, attempt: j.attempt, follow: false) {
                if case .stderr(let b) = chunk, err.count < bytes { err += b }
            }
        } catch {
            return "(stderr not available: \(error))"
        }
        if err.isEmpty { return "(no stderr)" }
        let lines = String(decoding: err.prefix(bytes), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).prefix(20)
        return lines.joined(separator: "\n")
    }
}

/// A batch's dependency graph as SVG: columns by depth, each job a box with its id and state in
/// words (the colour only repeats it), arrows from each dependency.
enum DAGView {
    static func svg(_ jobs: [JobRecord], limit: Int = 400) -> String {
        guard !jobs.isEmpty else { return "<p>no jobs</p>" }
        guard jobs.count <= limit else { return "<p>\(jobs.count) jobs: too many to draw (the limit is \(limit)); see the jobs table.</p>" }
        let byID = Dictionary(jobs.compactMap { j in j.batchJob.map { ($0, j) } }) { a, _ in a }
        var depth: [String: Int] = [:]
        func level(_ id: String, _ seen: Set<String> = []) -> Int {
            if let d = depth[id] { return d }
            guard let j = byID[id], !seen.contains(id) else { return 0 }
            let d = (j.request.after ?? []).map { level($0.job, seen.union([id])) + 1 }.max() ?? 0
            depth[id] = d
            return d
        }
        var columns: [[JobRecord]] = []
        for j in jobs {
            let d = level(j.batchJob ?? "")
            while columns.count <= d { columns.append([]) }
            columns[d].append(j)
        }
        let w = 150, h = 44, gx = 40, gy = 12
        var at: [String: (x: Int, y: Int)] = [:]
        for (c, column) in columns.enumerated() {
            for (r, j) in column.enumerated() { at[j.batchJob ?? ""] = (c * (w + gx) + 4, r * (h + gy) + 4) }
        }
        let width = columns.count * (w + gx), height = (columns.map(\.count).max() ?? 1) * (h + gy) + 8
        var svg = "<div class=\"scroll\"><svg class=\"dag\" role=\"img\" aria-label=\"dependency graph\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\">"
        svg += "<defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\"/></marker></defs>"
        for j in jobs {
            guard let to = at[j.batchJob ?? ""] else { continue }
            for d in j.request.after ?? [] {
                guard let from = at[d.job] else { continue }
                svg += "<line class=\"edge edge-\(d.condition.rawValue)\" x1=\"\(from.x + w)\" y1=\"\(from.y + h / 2)\" x2=\"\(to.x)\" y2=\"\(to.y + h / 2)\" marker-end=\"url(#arrow)\"><title>after \(HTML.escape(d.job)) (\(d.condition.rawValue))</title></line>"
            }
        }
        for j in jobs {
            guard let p = at[j.batchJob ?? ""] else { continue }
            let id = HTML.escape(String((j.batchJob ?? "").prefix(20)))
            svg += "<a href=\"/jobs/\(j.id)\"><g class=\"node st-\(j.state.rawValue)\"><rect x=\"\(p.x)\" y=\"\(p.y)\" width=\"\(w)\" height=\"\(h)\" rx=\"5\"/>"
            svg += "<text x=\"\(p.x + 6)\" y=\"\(p.y + 17)\">\(id)</text><text class=\"sub\" x=\"\(p.x + 6)\" y=\"\(p.y + 35)\">\(j.state.rawValue)\(j.compensation.map { " ↩ " + $0.rawValue } ?? "")\(j.host.map { " · " + HTML.escape($0) } ?? "")</text>"
            svg += "<title>\(HTML.escape(j.batchJob ?? "")): \(j.state.rawValue)\(j.compensation.map { ", " + $0.rawValue } ?? "")</title></g></a>"
        }
        return svg + "</svg></div>"
    }
}
