import DroverCoordinator
import Foundation

/// Attempts as bars per host and lane (a Gantt chart) over the last hours or a batch's life,
/// with the hosts' down and up marks: where time went, and where a host died.
struct TimelinePage {
    let site: Site

    func render(batch: String?, hours: Double, now: Double = Date().timeIntervalSince1970) throws -> String {
        let (from, to, attempts, marks, hosts, jobs) = try site.access.read { j -> (Double, Double, [AttemptRecord], [AuditEvent], [HostRecord], [Int: JobRecord]) in
            var from = now - max(0.01, hours) * 3600, to = now
            var batchJobs: Set<Int>?
            if let batch, let b = try j.batch(named: batch) {
                from = b.submittedAt
                to = b.finishedAt ?? now
                batchJobs = Set(try j.batchJobs(batch).map(\.id))
            }
            let attempts = try j.attempts(overlapping: from, to).filter { batchJobs?.contains($0.job) ?? true }
            let jobs = Dictionary(try j.jobs(Array(Set(attempts.map(\.job)))).map { ($0.id, $0) }) { a, _ in a }
            return (from, to, attempts, try j.hostEvents(since: from).filter { $0.time <= to }, try j.hosts(), jobs)
        }
        let form = "<form method=\"get\" action=\"/timeline\" class=\"filter\"><label>last <input name=\"hours\" value=\"\(hours)\" size=\"4\"> hour(s)</label> <label>or batch <input name=\"batch\" value=\"\(HTML.escape(batch ?? ""))\" size=\"12\"></label> <button>show</button></form>"
        return form + "<div id=\"live\"><p>\(HTML.time(from)) to \(HTML.time(to)) (UTC), \(attempts.count) attempt(s). Bars: ✓ succeeded, ✕ failed or lost, ▶ running; ▼ host down, ▲ host up.</p>"
            + svg(from: from, to: to, attempts: attempts, marks: marks, hosts: hosts.map(\.name), jobs: jobs) + "</div>"
    }

    func svg(from: Double, to: Double, attempts: [AttemptRecord], marks: [AuditEvent], hosts: [String], jobs: [Int: JobRecord]) -> String {
        let names = (hosts + attempts.map(\.host)).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        // Lanes: an attempt goes in the first lane of its host free at its start (as slots are).
        var lanes: [String: [Double]] = [:]
        var placed: [(AttemptRecord, Int)] = []
        let now = Date().timeIntervalSince1970
        // A lost attempt has no end of its own: it ended when its host was declared down.
        func end(_ a: AttemptRecord) -> Double {
            if let e = a.endedAt { return e }
            guard a.stale || a.state == "lost" else { return now }
            return marks.first { $0.host == a.host && $0.state == "down" && $0.time >= (a.startedAt ?? from) }?.time ?? now
        }
        for a in attempts {
            let start = a.startedAt ?? from, end = end(a)
            var free = lanes[a.host] ?? []
            let lane = free.firstIndex { $0 <= start } ?? free.count
            if lane == free.count { free.append(end) } else { free[lane] = end }
            lanes[a.host] = free
            placed.append((a, lane))
        }
        let left = 120, width = 900, laneHeight = 18
        let span = max(1, to - from)
        func x(_ t: Double) -> Int { left + Int(Double(width) * (min(max(t, from), to) - from) / span) }
        var y = 24
        var rowTop: [String: (y: Int, lanes: Int)] = [:]
        for n in names {
            let count = max(1, lanes[n]?.count ?? 1)
            rowTop[n] = (y, count)
            y += count * laneHeight + 8
        }
        var svg = "<div class=\"scroll\"><svg class=\"timeline\" role=\"img\" aria-label=\"timeline of attempts per host\" width=\"\(left + width + 10)\" height=\"\(y + 4)\" viewBox=\"0 0 \(left + width + 10) \(y + 4)\">"
        for i in 0...4 {
            let t = from + span * Double(i) / 4
            svg += "<line class=\"grid\" x1=\"\(x(t))\" y1=\"16\" x2=\"\(x(t))\" y2=\"\(y)\"/><text class=\"tick\" x=\"\(x(t) + 2)\" y=\"12\">\(Self.clock(t))</text>"
        }
        for n in names {
            guard let r = rowTop[n] else { continue }
            svg += "<text class=\"hostname\" x=\"4\" y=\"\(r.y + 13)\">\(HTML.escape(String(n.prefix(16))))</text><line class=\"row\" x1=\"\(left)\" y1=\"\(r.y + r.lanes * laneHeight + 4)\" x2=\"\(left + width)\" y2=\"\(r.y + r.lanes * laneHeight + 4)\"/>"
        }
        for (a, lane) in placed {
            guard let r = rowTop[a.host] else { continue }
            let x0 = x(a.startedAt ?? from), x1 = max(x0 + 2, x(end(a)))
            let ok = a.agentState == "exited" && a.exitCode == 0 && !a.stale
            let running = a.endedAt == nil && !a.stale && a.state != "lost"
            let cls = running ? "running" : ok ? "succeeded" : "failed"
            let symbol = running ? "▶" : ok ? "✓" : "✕"
            let label = jobs[a.job].map { $0.batchJob ?? $0.name ?? "\($0.id)" } ?? "\(a.job)"
            svg += "<a href=\"/jobs/\(a.job)\"><g class=\"bar st-\(cls)\"><rect x=\"\(x0)\" y=\"\(r.y + lane * laneHeight)\" width=\"\(x1 - x0)\" height=\"\(laneHeight - 3)\"/>"
            if x1 - x0 > 30 { svg += "<text x=\"\(x0 + 3)\" y=\"\(r.y + lane * laneHeight + 12)\">\(symbol) \(HTML.escape(String(label.prefix(max(1, (x1 - x0) / 7)))))</text>" }
            svg += "<title>job \(a.job) (\(HTML.escape(label))) attempt \(a.attempt) on \(HTML.escape(a.host)): \(symbol) \(HTML.escape(a.agentState ?? a.state))\(a.reason.map { " — " + HTML.escape($0) } ?? "")</title></g></a>"
        }
        for m in marks {
            guard let h = m.host, let r = rowTop[h], let s = m.state, s == "down" || s == "up" || s == "suspect" else { continue }
            let mx = x(m.time)
            svg += "<g class=\"mark mark-\(s)\"><line x1=\"\(mx)\" y1=\"\(r.y - 2)\" x2=\"\(mx)\" y2=\"\(r.y + r.lanes * laneHeight + 2)\"/><text x=\"\(mx + 2)\" y=\"\(r.y + 8)\">\(s == "up" ? "▲" : "▼") \(s)</text><title>\(HTML.escape(m.message))</title></g>"
        }
        return svg + "</svg></div>"
    }

    static func clock(_ t: Double) -> String {
        String(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: t)).dropFirst(11).prefix(8))
    }
}
