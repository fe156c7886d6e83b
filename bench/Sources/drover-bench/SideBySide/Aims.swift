import Foundation

/// The names of the figures the aims read, shared by the scenarios that measure them.
enum Metric {
    static func throughput(_ jobs: Int, _ workload: String) -> String { "\(jobs) × \(workload)" }
    static let submitToStart = "submit → job started"
    static let launchToResult = "launch → result back"
    static func idleHost(_ window: Int) -> String { "host CPU, idle \(window) s" }
    static func idleCoordinator(_ window: Int, hosts: Int) -> String { "coordinator CPU, idle \(window) s, \(hosts) hosts" }
    static let agentRSSIdle = "agent RSS, idle"
    static let agentRSSBusy = "agent RSS, 4 busy jobs"
    static func deadDetect(deadAfter: Double) -> String { "power-off → host marked down, dead-after \(Int(deadAfter)) s" }
    static func falseAlarms(_ window: Double) -> String { "hosts marked suspect/down, all CPUs busy \(Int(window)) s (per host)" }
    static func orphans(_ cancels: Int) -> String { "processes left after \(cancels) cancels" }
    static func coordinatorRSSQueued(_ queued: Int) -> String { "coordinator RSS, \(queued) jobs queued" }
    static func scaleIdleHosts(_ window: Int, hosts: Int) -> String { "host CPU, idle \(window) s, all \(hosts) hosts together" }
    static func scaleThroughput(_ jobs: Int, hosts: Int) -> String { "\(jobs) × true, \(hosts) hosts × 1 slot" }
    static func scaleDeadDetect(hosts: Int) -> String { "power-off → host marked down, \(hosts) hosts, dead-after 3 s" }
}

extension Double {
    /// A threshold as written in the issue: 500, 0.1, 10.
    var bound: String { String(format: "%g", self) }
}

/// One aim of issue 13 against this run's figures.
struct AimResult: Sendable {
    enum Verdict: String, Sendable {
        case met = "✔", missed = "✘", notMeasured = "not measured"
    }

    var aim: String
    /// What was measured, with its unit and statistic ("66.8 jobs/s (median of 3)"), or why not.
    var measured: String
    var threshold: String
    var verdict: Verdict
    /// A ✘ of this aim makes the run fail (false alarms, orphans).
    var zeroTolerance = false
    /// The value compared with the threshold, when there is one.
    var value: Double?
}

/// The aims of issue 13 ("An event-driven core"), each judged on a figure of this run.
enum Aims {
    static func evaluate(_ report: Report, quick: Bool) -> [AimResult] {
        var out: [AimResult] = []
        func figure(_ scenario: String, _ metric: String, _ tool: String = "drover") -> Figure? {
            report.figures.first { $0.scenario == scenario && $0.metric == metric && $0.tool == tool && !$0.samples.isEmpty }
        }
        /// A figure whose metric starts with a prefix (the counts in names differ between full and quick runs).
        func figure(_ scenario: String, prefix: String, suffix: String = "", _ tool: String = "drover") -> Figure? {
            report.figures.first { $0.scenario == scenario && $0.metric.hasPrefix(prefix) && $0.metric.hasSuffix(suffix) && $0.tool == tool && !$0.samples.isEmpty }
        }
        func stat(_ f: Figure, _ which: String, _ unit: String, _ factor: Double) -> (Double, String) {
            let v: Double
            switch which {
            case "max": v = f.max! * factor
            case "sum": v = f.samples.reduce(0, +) * factor
            default: v = f.median! * factor
            }
            let n = f.samples.count
            let how = n == 1 ? "" : which == "median" ? " (p50 of \(n))" : " (\(which) of \(n))"
            return (v, "\(v.shown)\(unit.isEmpty ? "" : " " + unit)\(how)")
        }
        /// An aim on one figure: `which` statistic (median, max, sum) compared with a bound.
        /// `factor` converts the figure's unit to `unit` (1000 for s to ms).
        func aim(_ name: String, _ f: Figure?, _ which: String = "median", _ unit: String, factor: Double = 1, atMost: Double? = nil, atLeast: Double? = nil,
                 zero: Bool = false, note: String = "") {
            let threshold = zero ? "0" : atMost.map { "≤ \($0.bound) \(unit)" } ?? "≥ \(atLeast!.bound) \(unit)"
            guard let f else {
                out.append(AimResult(aim: name, measured: "–", threshold: threshold, verdict: .notMeasured, zeroTolerance: zero))
                return
            }
            let (v, shown) = stat(f, which, unit, factor)
            let ok = zero ? v == 0 : atMost.map { v <= $0 } ?? (v >= atLeast!)
            out.append(AimResult(aim: name, measured: shown + note, threshold: threshold, verdict: ok ? .met : .missed, zeroTolerance: zero, value: v))
        }
        /// An aim on the ratio of two figures' medians (a over b), which must be at least `atLeast`
        /// (or above it, when `strictly`).
        func ratio(_ name: String, _ a: Figure?, _ b: Figure?, over: String, atLeast: Double, strictly: Bool) {
            let threshold = "\(strictly ? ">" : "≥") \(atLeast.bound)× \(over)"
            guard let a, let b, let x = a.median, let y = b.median, y > 0 else {
                out.append(AimResult(aim: name, measured: "–", threshold: threshold, verdict: .notMeasured))
                return
            }
            let r = x / y
            let ok = strictly ? r > atLeast : r >= atLeast
            out.append(AimResult(aim: name, measured: String(format: "%.2f× (%@ / %@ %@)", r, x.shown, y.shown, a.unit),
                                 threshold: threshold, verdict: ok ? .met : .missed, value: r))
        }

        let idleNote = quick ? " [--quick: 10 s]" : ""
        for w in ["true", "sleep 10 ms"] {
            let f = figure("throughput", prefix: "", suffix: " × \(w)")
            let jobs = f.map { " [\($0.metric)]" } ?? ""
            aim("throughput, 3 hosts × 4 slots, \(w)", f, "median", "jobs/s", atLeast: 500, note: quick ? jobs : "")
            ratio("throughput above Dask's, \(w)", f, figure("throughput", prefix: "", suffix: " × \(w)", "dask"), over: "Dask", atLeast: 1, strictly: true)
        }
        aim("submit → job started, drover run -- true", figure("latency", Metric.submitToStart), "median", "ms", factor: 1000, atMost: 10)
        aim("launch → result back, drover run -- true", figure("latency", Metric.launchToResult), "median", "ms", factor: 1000, atMost: 40)
        aim("idle agent, 3 hosts, 60 s (worst host, all its processes)", figure("idle", prefix: "host CPU, idle"), "max", "%", atMost: 0.1, note: idleNote)
        aim("idle coordinator, 3 hosts, nothing queued, 60 s", figure("idle", prefix: "coordinator CPU, idle", suffix: ", 3 hosts"), "median", "%", atMost: 0.5, note: idleNote)
        let scaleHosts = SideBySide.scaleHosts
        aim("scale: idle CPU of all \(scaleHosts) agents together", figure("scale", prefix: "host CPU, idle", suffix: "all \(scaleHosts) hosts together"), "median", "%", atMost: 5)
        aim("scale: idle coordinator, \(scaleHosts) hosts", figure("scale", prefix: "coordinator CPU, idle", suffix: ", \(scaleHosts) hosts"), "median", "%", atMost: 2)
        ratio("scale: throughput \(scaleHosts) × 1 slot vs 3 × 4 (true)", figure("scale", prefix: "", suffix: ", \(scaleHosts) hosts × 1 slot"),
              figure("throughput", prefix: "", suffix: " × true"), over: "3 hosts", atLeast: 1, strictly: false)
        aim("scale: dead host detected, \(scaleHosts) hosts, --dead-after 3", figure("scale", Metric.scaleDeadDetect(hosts: scaleHosts)), "max", "s", atMost: 4)
        aim("dead host detected, 3 hosts, --dead-after 3", figure("dead host", Metric.deadDetect(deadAfter: 3)), "max", "s", atMost: 4)
        aim("false alarms: hosts suspect/down, every slot CPU-bound, --dead-after 3", figure("false alarms", prefix: "hosts marked suspect/down"), "sum", "", zero: true,
            note: quick ? " [--quick: 15 s, not 2 min]" : "")
        aim("orphans: processes left after cancels", figure("orphans", prefix: "processes left after"), "sum", "", zero: true)
        let rss = [figure("idle", Metric.agentRSSIdle), figure("overhead", Metric.agentRSSBusy)].compactMap { $0 }
        aim("agent RSS, idle and busy (worst)", rss.isEmpty ? nil : Figure(scenario: "", metric: "", unit: "MiB", tool: "drover", better: .lower, samples: rss.flatMap(\.samples)),
            "max", "MiB", atMost: 10)
        let coordinatorRSS = figure("overhead", prefix: "coordinator RSS")
        aim("coordinator RSS, 10,000 jobs queued", coordinatorRSS, "max", "MiB", atMost: 64,
            note: coordinatorRSS.map { $0.metric.contains("10000") ? "" : " [\($0.metric.replacingOccurrences(of: "coordinator RSS, ", with: ""))]" } ?? "")
        out.append(AimResult(aim: "crash-safety promises", measured: "checked by the test suite (scripts/test), not here", threshold: "all kept", verdict: .notMeasured))
        return out
    }
}
