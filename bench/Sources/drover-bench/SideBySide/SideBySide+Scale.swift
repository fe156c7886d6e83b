import DroverCoordinator
import DroverCore
import Foundation

/// The scale scenario: 50 testbed hosts with 1 slot each (a full run only, or `--only scale`).
extension SideBySide {
    static let scaleHosts = 50

    /// Replaces the 3-host testbed with 50 hosts (`scripts/testbed up 50`), 1 slot each, and measures
    /// with a coordinator of default settings (as the 3-host throughput): the time until all 50 are up
    /// (deploy included), idle CPU of all 50 hosts together and of the coordinator over `idleWindow`,
    /// and trivial-job throughput (`drover map` of `true`), counting the hosts marked down meanwhile;
    /// then, with a coordinator at `--dead-after 3`, dead-host detection. Then puts the 3 hosts back.
    func scale() throws {
        let n = Self.scaleHosts
        var args = ["up", "\(n)", "--suites", "bookworm"]
        if let share { args += ["--share", share] }
        defer { restoreThreeHosts() }
        let t0 = now()
        let r = try ChildProcess.run([bed.script] + args, timeout: 900)
        guard r.status == 0 else { throw BenchFailure("scripts/testbed up \(n): \(r.stderrText.suffix(400))") }
        let bringUp = now() - t0
        let big = try Testbed(dir: bed.dir)
        guard big.hosts.count == n else { throw BenchFailure("scripts/testbed up \(n) made \(big.hosts.count) hosts") }
        add("scale", "scripts/testbed up \(n)", "s", "testbed", .lower, [bringUp], note: "not Drover: the hosts booting")

        var upSeconds: [Double] = [], hostsCPU: [Double] = [], coordinatorCPU: [Double] = [], perHost: [Double] = []
        var rates: [Double] = [], rss: [Double] = [], downs: [Double] = [], failed: [Double] = []
        let window = Int(idleWindow)
        let started = now()
        // A failed part is recorded and the next part still runs.
        func part(_ name: String, _ body: () throws -> Void) {
            do { try body() } catch {
                problems.append("scale, \(name): \(error)")
                print("  failed (\(name)): \(error)")
            }
        }
        part("idle and throughput") {
            try withCoordinator(on: big, slots: 1, upTimeout: 600) { c in
                upSeconds.append(now() - started)
                let (w, coord) = try measureIdle(c, bed: big)
                let per = w.hostPercent
                guard per.count == n else { throw BenchFailure("\(per.count) of \(n) hosts measured") }
                hostsCPU.append(per.values.reduce(0, +))
                perHost = Array(per.values)
                coordinatorCPU.append(coord)
                rss = w.after.values.compactMap(\.agentRSS).map { $0 / 1_048_576 }
                let j = try c.journal()
                // One trial: on this 2-CPU machine, 50 hosts make a trial take minutes.
                let from = try j.lastEventID()
                let m = try droverMap(c, ["true"], (1...jobs).map(String.init), allowFailed: true)
                rates.append(m.rate)
                failed.append(Double(m.failed))
                downs.append(Double(try j.allEvents(after: from).filter { $0.kind == "host" && $0.state == "down" }.count))
                if m.failed > 0 { problems.append("scale: \(m.failed) of \(jobs) jobs of `drover map true` failed on \(n) hosts") }
            }
        }
        add("scale", "coordinator start → \(n) hosts up (deploy included)", "s", "drover", .lower, upSeconds)
        add("scale", Metric.scaleIdleHosts(window, hosts: n), "%", "drover", .lower, hostsCPU, note: "summed over the hosts")
        add("scale", "host CPU, idle \(window) s, each of \(n) hosts", "%", "drover", .lower, perHost)
        add("scale", Metric.idleCoordinator(window, hosts: n), "%", "drover", .lower, coordinatorCPU)
        add("scale", "agent RSS, idle, each of \(n) hosts", "MiB", "drover", .lower, rss)
        add("scale", Metric.scaleThroughput(jobs, hosts: n), "jobs/s", "drover", .higher, rates, note: "dead-after 10 s (default), as on 3 hosts")
        add("scale", "hosts marked down during \(jobs) × true, \(n) hosts", "count", "drover", .lower, downs, note: "every host was up; should be 0")
        add("scale", "jobs failed of \(jobs) × true, \(n) hosts", "count", "drover", .lower, failed, note: "must be 0: a failure fails the run")
        part("dead host") {
            let (detect, replace) = try droverDeadHost(on: big, slots: 1, deadAfter: 3, trials: trials)
            add("scale", Metric.scaleDeadDetect(hosts: n), "s", "drover", .lower, detect)
            add("scale", "power-off → its job running elsewhere, \(n) hosts, dead-after 3 s", "s", "drover", .lower, replace)
        }
    }

    /// Puts the bench's 3 bookworm hosts back (with the Dask venv shared), as `bench/run` made them.
    func restoreThreeHosts() {
        var args = ["up", "3", "--suites", "bookworm"]
        if let share { args += ["--share", share] }
        let r = try? ChildProcess.run([bed.script] + args, timeout: 300)
        if r?.status != 0 { problems.append("scale: cannot put the 3-host testbed back: \(r?.stderrText.suffix(300) ?? "")") }
    }
}
