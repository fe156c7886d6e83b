import DroverCoordinator
import DroverCore
import Foundation

/// Scenarios 1 and 2: dispatch throughput and single-job latency.
extension SideBySide {
    /// 2,000 trivial jobs (`true`, and a 10 ms sleep) over 3 hosts × 4 slots, as one command each:
    /// `drover map` (results collected) against `parallel -S` (outputs returned) and Dask `client.map`.
    func throughput() throws {
        // Both tools append the input to the command: `true N`, and `sleep 0.01 0.00000000N`
        // (sleep adds its arguments, so the input costs nanoseconds).
        let workloads: [(name: String, argv: [String], input: (Int) -> String, dask: String)] = [
            ("true", ["true"], { String($0) }, "true"),
            ("sleep 10 ms", ["sleep", "0.01"], { "0.00000000\($0)" }, "sleep"),
        ]
        for w in workloads {
            let metric = "\(jobs) × \(w.name)"
            var rates: [Double] = [], cpu: [Double] = []
            try withCoordinator { c in
                for t in 0..<trials {
                    let inputs = (1...jobs).map { w.input(t * jobs + $0) }
                    let cpu0 = bed.cpuSeconds(pid: c.pid) + childrenCPU()
                    let t0 = now()
                    let r = try c.command(["map", "--restart", "--progress", "none", "--results", c.state + "/results"] + w.argv + [":::"] + inputs)
                    let seconds = now() - t0
                    guard r.status == 0 else { throw BenchFailure("drover map exited \(r.status): \(r.stderrText.suffix(400))") }
                    rates.append(Double(jobs) / seconds)
                    cpu.append((bed.cpuSeconds(pid: c.pid) + childrenCPU() - cpu0) * 1000 / Double(jobs))
                }
            }
            add("throughput", metric, "jobs/s", "drover", .higher, rates)
            add("throughput", metric + ", local CPU per 1000 jobs", "s", "drover", .lower, cpu)
            do {
                let peer = GNUParallel(bed: bed)
                var pr: [Double] = [], pc: [Double] = []
                // One ssh per job: 2,000 jobs take minutes, so a full run times parallel once.
                for t in 0..<1 {
                    let r = try peer.run(w.argv + [":::"] + (1...jobs).map { w.input(t * jobs + $0) })
                    guard r.outcome.status == 0 else { throw BenchFailure("\(peer.tool) exited \(r.outcome.status): \(r.outcome.stderrText.suffix(400))") }
                    pr.append(Double(jobs) / r.seconds)
                    pc.append(r.cpu * 1000 / Double(jobs))
                }
                add("throughput", metric, "jobs/s", peer.tool, .higher, pr)
                add("throughput", metric + ", local CPU per 1000 jobs", "s", peer.tool, .lower, pc)
            }
            let dr = try dask("throughput")[w.dask]?.doubles.map { Double(jobs) / $0 } ?? []
            add("throughput", metric, "jobs/s", "dask", .higher, dr, note: "tasks run the command with subprocess.run")
        }
    }

    /// One trivial job at a time on an idle system: from the command's launch to the job's start,
    /// and to its result back on this machine.
    func latency() throws {
        let samples = latencySamples
        var start: [Double] = [], result: [Double] = []
        try withCoordinator { c in
            let j = try c.journal()
            for _ in 0..<samples {
                let t0 = now()
                let r = try c.command(["run", "--", "true"], timeout: 60)
                let t1 = now()
                guard r.status == 0, let started = try j.jobs().max(by: { $0.id < $1.id })?.startedAt else {
                    throw BenchFailure("drover run exited \(r.status): \(r.stderrText.suffix(300))")
                }
                start.append(started - t0)
                result.append(t1 - t0)
            }
        }
        add("latency", "launch → job started", "s", "drover", .lower, start, note: "drover run -- true")
        add("latency", "launch → result back", "s", "drover", .lower, result)
        let peer = GNUParallel(bed: bed)
        var ps: [Double] = [], pr: [Double] = []
        for _ in 0..<samples {
            let t0 = now()
            let r = try ChildProcess.run(peer.argv(slots: 1, hosts: [bed.hosts[0].name], ["-N0", "date", "+%s.%N", ":::", "1"]), timeout: 60)
            let t1 = now()
            guard r.status == 0, let s = Double(r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw BenchFailure("parallel exited \(r.status): \(r.stderrText.suffix(300))")
            }
            ps.append(s - t0)
            pr.append(t1 - t0)
        }
        add("latency", "launch → job started", "s", peer.tool, .lower, ps, note: "parallel -S 1/h1 -N0 date +%s.%N ::: 1")
        add("latency", "launch → result back", "s", peer.tool, .lower, pr)
        let d = try dask("latency")
        add("latency", "launch → job started", "s", "dask", .lower, d["start_s"]?.doubles ?? [], note: "client.submit in a running client")
        add("latency", "launch → result back", "s", "dask", .lower, d["result_s"]?.doubles ?? [])
    }
}
