import DroverCore
import Foundation

/// The side-by-side table, printed and written as JSON and Markdown under bench/results/.
struct Report {
    var figures: [Figure] = []
    var context: [String: String] = [:]
    /// The aims of issue 13 judged on these figures (Aims.evaluate), printed after them.
    var aims: [AimResult] = []

    /// Records a figure and prints it at once, so a long run shows progress.
    mutating func add(_ f: Figure) {
        figures.append(f)
        print("  " + row(f).dropFirst().filter { !$0.isEmpty }.joined(separator: "  "))
        fflush(nil)  // also into a pipe or file, so a long run shows its progress
    }

    func drover(for f: Figure) -> Figure? {
        figures.first { $0.scenario == f.scenario && $0.metric == f.metric && $0.tool == "drover" }
    }

    /// A figure as table cells; a peer's row carries Drover/peer for the same metric.
    func row(_ f: Figure) -> [String] {
        let value = { (v: Double?) in v.map { $0.shown } ?? "–" }
        let range = f.min.map { "\($0.shown)–\(f.max!.shown)" } ?? "–"
        let ratio = f.ratio(drover: drover(for: f)).map { String(format: "%.2f", $0) } ?? ""
        return [f.scenario, f.metric + " (\(f.unit))", f.tool, value(f.median), value(f.p99), range, "\(f.samples.count)", ratio, f.note ?? ""]
    }

    static let header = ["scenario", "metric", "tool", "median", "p99", "min–max", "n", "drover/peer", "note"]

    func table() -> String {
        TextTable.render([Self.header] + figures.map(row))
    }

    static let aimsHeader = ["aim", "measured", "threshold", "✔/✘", "zero tolerance"]

    func aimRow(_ a: AimResult) -> [String] {
        [a.aim, a.measured, a.threshold, a.verdict.rawValue, a.zeroTolerance ? "yes" : ""]
    }

    /// The aims table: each aim with this run's value, its threshold, and ✔, ✘ or "not measured".
    func aimsTable() -> String {
        let met = aims.filter { $0.verdict == .met }.count, missed = aims.filter { $0.verdict == .missed }.count
        let title = "aims (issue 13): \(met) ✔, \(missed) ✘, \(aims.count - met - missed) not measured; only a zero-tolerance ✘ fails the run"
        return title + "\n" + TextTable.render([Self.aimsHeader] + aims.map(aimRow))
    }

    func markdown() -> String {
        var out = "# Drover side by side — \(context["date"] ?? "")\n\n"
        for key in context.keys.sorted() { out += "- \(key): \(context[key]!)\n" }
        out += "\nRatios are Drover's median over the peer's median, measured in this run. "
        out += "For times lower is better (a ratio below 1 means Drover is faster); for jobs/s higher is better.\n\n"
        out += "| " + Self.header.joined(separator: " | ") + " |\n"
        out += "|" + String(repeating: " --- |", count: Self.header.count) + "\n"
        for r in figures.map(row) { out += "| " + r.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n" }
        if !aims.isEmpty {
            out += "\n## Aims (issue 13)\n\nEach aim with this run's value and its threshold. Only a ✘ of a zero-tolerance aim fails the run.\n\n"
            out += "| " + Self.aimsHeader.joined(separator: " | ") + " |\n"
            out += "|" + String(repeating: " --- |", count: Self.aimsHeader.count) + "\n"
            for r in aims.map(aimRow) { out += "| " + r.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n" }
        }
        return out
    }

    func json() -> String {
        var o = JSONObject()
        var ctx = JSONObject()
        for key in context.keys.sorted() { ctx.set(key, context[key]!) }
        o.set("context", raw: ctx.text)
        var items: [JSONObject] = []
        for f in figures {
            var i = JSONObject()
            i.set("scenario", f.scenario)
            i.set("metric", f.metric)
            i.set("unit", f.unit)
            i.set("tool", f.tool)
            i.set("better", f.better.rawValue)
            i.set("samples", raw: "[" + f.samples.map(JSONText.number).joined(separator: ",") + "]")
            for (k, v) in [("median", f.median), ("p99", f.p99), ("min", f.min), ("max", f.max), ("drover_over_peer", f.ratio(drover: drover(for: f)))] {
                i.set(k, v)
            }
            if let n = f.note { i.set("note", n) }
            items.append(i)
        }
        o.set("figures", objects: items)
        o.set("aims", objects: aims.map { a in
            var i = JSONObject()
            i.set("aim", a.aim)
            i.set("measured", a.measured)
            i.set("value", a.value)
            i.set("threshold", a.threshold)
            i.set("verdict", a.verdict == .met ? "met" : a.verdict == .missed ? "missed" : "not measured")
            i.set("zero_tolerance", a.zeroTolerance)
            return i
        })
        return o.text
    }

    /// Writes `<dir>/<timestamp>.json` and `.md`; returns the two paths.
    func write(to dir: String, stamp: String) throws -> (String, String) {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let base = dir + "/" + stamp
        try (json() + "\n").write(toFile: base + ".json", atomically: true, encoding: .utf8)
        try markdown().write(toFile: base + ".md", atomically: true, encoding: .utf8)
        return (base + ".json", base + ".md")
    }
}
