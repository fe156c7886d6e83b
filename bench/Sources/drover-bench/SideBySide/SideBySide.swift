import DroverCore
import Foundation

/// `drover-bench run`: every scenario for Drover and its peers on the same testbed hosts, in one
/// run, printed as one table with Drover/peer ratios (see bench/README.md).
final class SideBySide {
    let drover: String
    let agent: String
    let bed: Testbed
    let dask: DaskPeer
    let quick: Bool
    let results: String
    /// Scenarios to run (`--only`); nil runs all of them (scale only in a full run).
    let only: Set<String>?
    /// The folder `bench/run` shares into the 3 hosts (the Dask venv's), to put them back after `scale`.
    let share: String?
    var report = Report()
    /// Scenarios that could not be measured, with why; any of them makes the run fail.
    var problems: [String] = []

    /// Dask's throughput, latency and idle figures, measured once on one cluster (starting one takes seconds).
    private var daskFigures: JSONNode?
    func dask(_ part: String) throws -> JSONNode {
        if daskFigures == nil {
            daskFigures = try dask.run("all", ["--jobs", "\(jobs)", "--samples", "\(latencySamples)", "--trials", "\(trials)"])
        }
        guard let node = daskFigures?[part] else { throw BenchFailure("dask: no \(part) figures") }
        return node
    }

    init(drover: String, agent: String, bed: Testbed, dask: DaskPeer, quick: Bool, results: String, only: Set<String>? = nil, share: String? = nil) {
        (self.drover, self.agent, self.bed, self.dask, self.quick, self.results) = (drover, agent, bed, dask, quick, results)
        (self.only, self.share) = (only, share)
    }

    /// Every scenario in the order of a run; `scale` (50 hosts) is left out of `--quick` unless named.
    static let scenarios = ["throughput", "latency", "idle", "dead-host", "false-alarms", "orphans", "overhead", "scale"]

    /// Sizes: the full run, and `--quick` (under 3 minutes, run by the test suite).
    var jobs: Int { quick ? 100 : 2000 }
    var trials: Int { quick ? 1 : 3 }
    var latencySamples: Int { quick ? 10 : 100 }

    func run() -> Int32 {
        let stamp = Self.stamp()
        report.context = [
            "date": stamp, "mode": quick ? "quick" : "full",
            "machine": "\(ProcessInfo.processInfo.activeProcessorCount) CPUs, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB, testbed of \(bed.hosts.count) hosts (network namespaces on this machine)",
            "drover": Self.commit(), "gnu parallel": GNUParallel.version, "dask": dask.version,
        ]
        if let only { report.context["only"] = only.sorted().joined(separator: ",") }
        print("drover side-by-side benchmark (\(quick ? "quick" : "full")) — \(stamp)")
        let bodies: [String: () throws -> Void] = [
            "throughput": throughput, "latency": latency, "idle": idle, "dead-host": deadHost,
            "false-alarms": falseAlarms, "orphans": orphans, "overhead": overhead, "scale": scale,
        ]
        for name in Self.scenarios {
            if let only, !only.contains(name) { continue }
            if only == nil, quick, name == "scale" { continue }
            scenario(name.replacingOccurrences(of: "-", with: " "), bodies[name]!)
        }
        bed.restore()
        report.aims = Aims.evaluate(report, quick: quick)
        print("\n" + report.table())
        print("\n" + report.aimsTable())
        do {
            let (json, md) = try report.write(to: results, stamp: stamp)
            print("\nwritten: \(json)\n         \(md)")
        } catch {
            problems.append("cannot write the results into \(results): \(error)")
        }
        // The zero-tolerance aims (false alarms, orphans): every Drover figure that must be 0.
        let mustBeZero = report.figures.filter { $0.tool == "drover" && $0.better == .zero && $0.samples.contains { $0 != 0 } }
        for f in mustBeZero { problems.append("\(f.scenario): \(f.metric) is \(f.samples.map(\.shown).joined(separator: ", ")) for Drover; must be 0") }
        for p in problems { print("bench: \(p)") }
        return problems.isEmpty ? 0 : 1
    }

    /// Runs one scenario; a failure is recorded and the next scenario still runs on a restored testbed.
    func scenario(_ name: String, _ body: () throws -> Void) {
        print("\n== \(name)")
        fflush(nil)
        let t0 = now()
        defer { print("   (\(Int(now() - t0)) s)") }
        do {
            try body()
        } catch {
            problems.append("\(name): \(error)")
            print("  failed: \(error)")
            bed.restore()
        }
    }

    func add(_ scenario: String, _ metric: String, _ unit: String, _ tool: String, _ better: Figure.Better, _ samples: [Double], note: String? = nil) {
        report.add(Figure(scenario: scenario, metric: metric, unit: unit, tool: tool, better: better, samples: samples, note: note))
    }

    /// A coordinator with `slots` per host of `bed` (the 3-host testbed unless given), all hosts
    /// up, for the length of `body`. `options`: more options of `drover coordinator`.
    func withCoordinator<T>(on other: Testbed? = nil, slots: Int = 4, options: [String] = [], upTimeout: Double = 120,
                            _ body: (CoordinatorProcess) throws -> T) throws -> T {
        let bed = other ?? self.bed
        let inventory = try bed.inventory(slots: slots)
        defer { unlink(inventory) }
        let c = try CoordinatorProcess(drover: drover, inventory: inventory, agent: agent, options: options)
        defer { c.stop() }
        try c.waitUp(bed.hosts.count, timeout: upTimeout)
        return try body(c)
    }

    static func stamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd'T'HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }

    static func commit() -> String {
        ((try? ChildProcess.run(["/usr/bin/git", "-C", FileManager.default.currentDirectoryPath, "rev-parse", "--short", "HEAD"]))?
            .stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)).map { "commit \($0)" } ?? "unknown commit"
    }
}
