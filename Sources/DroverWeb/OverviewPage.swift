import DroverCoordinator
import Foundation
import Hummingbird

/// The overview (hosts, batches, recent jobs and events), the jobs table and the events page.
struct OverviewPage {
    let site: Site

    func render(now: Double = Date().timeIntervalSince1970) throws -> String {
        let jobs = try site.access.read { try $0.jobs() }
        let recent = Array(jobs.filter { !$0.state.isFinal }.reversed()) + jobs.filter(\.state.isFinal).suffix(20).reversed()
        return "<div id=\"live\">" + "<h2>Hosts</h2>" + (try hostsTable(now: now))
            + "<h2>Batches</h2>" + (try batchesTable())
            + "<h2>Jobs <small>(unfinished and the 20 latest; <a href=\"/jobs\">all, filterable</a>)</small></h2>" + jobsTable(Array(recent.prefix(200)), now: now)
            + "<h2>Latest events <small>(<a href=\"/events\">all</a>)</small></h2>" + eventsTable(try site.access.read { j in
                let last = try j.lastEventID()
                return try j.events(after: max(0, last - 15))
            }.reversed())
            + "</div>"
    }

    func hostsTable(now: Double) throws -> String {
        let rows = try site.hostViews(now: now).map { v -> [String] in
            let h = v.host
            let total = h.slots ?? 0
            let slots = total > 0
                ? "<meter min=\"0\" max=\"\(total)\" value=\"\(h.usedSlots)\" title=\"\(h.usedSlots) of \(total) slots used\"></meter> \(h.usedSlots)/\(total)"
                : "\(h.usedSlots)/?"
            let labels = v.labels.sorted { $0.key < $1.key }.map { "<code>\(HTML.escape($0.key))=\(HTML.escape($0.value))</code>" }.joined(separator: " ")
            let build = [h.agentVersion, h.agentBuild.map { String($0.prefix(12)) }].compactMap { $0 }.joined(separator: " ")
            var state = HTML.state(h.state)
            if let q = v.quarantine {
                state += " " + HTML.state("quarantined") + " <small class=\"why\">(\(HTML.escape(q.state.rawValue))\(q.reason.map { ": " + HTML.escape($0) } ?? ""))</small>"
            }
            let error = h.state == "up" ? "" : HTML.escape(h.error ?? "")
            return ["<span class=\"host\">\(HTML.escape(h.name))</span>", state, HTML.age(h.heartbeatTime, now: now),
                    h.load1.map { String(format: "%.2f", $0) } ?? "-", Self.memory(h), slots,
                    build.isEmpty ? "-" : "<code>\(HTML.escape(build))</code>", Self.platform(v.platform), labels.isEmpty ? "-" : labels, error]
        }
        return HTML.table(["host", "state", "heartbeat", "load", "memory", "slots", "agent", "platform and facts", "labels", "last error"], rows, id: "hosts")
    }

    /// Available of total memory, with a bar of the part in use.
    static func memory(_ h: HostRecord) -> String {
        guard let available = h.memoryAvailableBytes else { return "-" }
        guard let total = h.memoryTotalBytes, total > 0 else { return HTML.bytes(available) + " free" }
        let used = max(0, total - available)
        return "<meter min=\"0\" max=\"\(total)\" value=\"\(used)\" title=\"\(HTML.bytes(used)) of \(HTML.bytes(total)) in use\"></meter> "
            + "\(HTML.bytes(available)) free of \(HTML.bytes(total))"
    }

    /// OS, kernel, CPU and GPUs, then the requested facts (as `drover hosts --facts`).
    static func platform(_ p: PlatformView?) -> String {
        guard let p else { return "-" }
        var lines = [p.os, p.kernel.map { "kernel " + $0 }, p.cpu].compactMap { $0 }.map(HTML.escape)
        if !p.gpus.isEmpty { lines.append("\(p.gpus.count) GPU(s): " + p.gpus.map(HTML.escape).joined(separator: ", ")) }
        let facts = p.facts.sorted { $0.key < $1.key }.map { "<code>\(HTML.escape($0.key))=\(HTML.escape($0.value))</code>" }
            + p.errors.sorted { $0.key < $1.key }.map { "<code title=\"\(HTML.escape($0.value))\">\(HTML.escape($0.key))=?</code>" }
        if !facts.isEmpty { lines.append(facts.joined(separator: " ")) }
        return lines.isEmpty ? "-" : "<small class=\"platform\">" + lines.joined(separator: "<br>") + "</small>"
    }

    func batchesTable() throws -> String {
        let rows = try site.batchViews().reversed().map { b -> [String] in
            let done = b.done
            return ["<a href=\"/batches/\(HTML.component(b.name))\">\(HTML.escape(b.name))</a>",
                    "<progress max=\"\(max(1, b.total))\" value=\"\(done)\"></progress> \(done)/\(b.total)",
                    b.states.sorted { $0.key < $1.key }.map { "\(HTML.state($0.key)) \($0.value)" }.joined(separator: " "),
                    HTML.time(b.submittedAt), b.finishedAt == nil ? "running" : HTML.time(b.finishedAt)]
        }
        return HTML.table(["batch", "progress", "jobs", "submitted", "finished"], rows, id: "batches")
    }

    func jobsTable(_ jobs: [JobRecord], now: Double) -> String {
        let rows = jobs.map { j -> [String] in
            [HTML.jobLink(j), HTML.escape(j.name ?? j.batchJob ?? "-"), HTML.state(j.state.rawValue), HTML.escape(j.host ?? "-"),
             j.batch.map { "<a href=\"/batches/\(HTML.component($0))\">\(HTML.escape($0))</a>" } ?? "-", j.attempt == 0 ? "-" : "\(j.attempt)",
             j.elapsed(now: now).map(HTML.duration) ?? "-", j.state.isFinal ? HTML.exit(j.exitCode, j.signal) : "-",
             "<code>\(HTML.escape(String(j.request.commandLine.prefix(80))))</code>"]
        }
        return HTML.table(["id", "name", "state", "host", "batch", "attempt", "elapsed", "exit", "command"], rows, id: "jobs")
    }

    func jobsPage(_ filter: JobFilter, query: Parameters, now: Double = Date().timeIntervalSince1970) throws -> String {
        let jobs = filter.apply(try site.access.read { try $0.jobs() })
        func field(_ name: String, _ value: String?) -> String {
            "<label>\(name) <input name=\"\(name)\" value=\"\(HTML.escape(value ?? ""))\" size=\"10\"></label>"
        }
        let states = [""] + JobState.allCases.map(\.rawValue)
        let select = "<label>state <select name=\"state\">" + states.map { s in
            "<option value=\"\(s)\"\(s == (filter.state ?? "") ? " selected" : "")>\(s.isEmpty ? "any" : s)</option>"
        }.joined() + "</select></label>"
        let form = "<form method=\"get\" action=\"/jobs\" class=\"filter\">\(select) \(field("host", filter.host)) \(field("batch", filter.batch)) \(field("name", filter.name)) <button>filter</button></form>"
        return form + "<div id=\"live\"><p>\(jobs.count) job(s), newest first.</p>" + jobsTable(jobs, now: now) + "</div>"
    }

    func eventsTable<S: Sequence>(_ events: S) -> String where S.Element == AuditEvent {
        HTML.table(["id", "time", "kind", "job", "host", "state", "message"], events.map { e in
            ["\(e.id)", HTML.time(e.time), HTML.escape(e.kind), e.job.map { "<a href=\"/jobs/\($0)\">\($0)</a>" } ?? "-",
             HTML.escape(e.host ?? "-"), e.state.map(HTML.state) ?? "-", HTML.escape(e.message)]
        }, id: "events")
    }

    func eventsPage(kind: String?, job: Int?) throws -> String {
        let events = try site.access.read { j in
            let last = try j.lastEventID()
            return try j.events(after: job == nil && kind == nil ? max(0, last - 500) : 0, job: job, limit: 100_000)
        }.filter { kind == nil || $0.kind == kind }.suffix(500).reversed()
        let form = "<form method=\"get\" action=\"/events\" class=\"filter\"><label>kind <input name=\"kind\" value=\"\(HTML.escape(kind ?? ""))\" size=\"10\"></label> <label>job <input name=\"job\" value=\"\(job.map(String.init) ?? "")\" size=\"6\"></label> <button>filter</button></form>"
        return form + "<div id=\"live\"><p>Newest first (at most 500).</p>" + eventsTable(events) + "</div>"
    }
}
