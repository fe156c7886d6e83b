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
            let metric = Metric.throughput(jobs, w.name)
            var rates: [Double] = [], cpu: [Double] = []
            try withCoordinator { c in
                for t in 0..<trials {
                    let m = try droverMap(c, w.argv, (1...jobs).map { w.input(t * jobs + $0) })
                    rates.append(m.rate)
                    cpu.append(m.cpuPer1000)
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

    /// One `drover map` of `argv` over `inputs` to the end: jobs per second from launch to the last
    /// result, and local CPU seconds per 1,000 jobs (the coordinator and the command).
    /// Throws when the map fails, unless `allowFailed` (then `failed` says how many jobs failed).
    func droverMap(_ c: CoordinatorProcess, _ argv: [String], _ inputs: [String], allowFailed: Bool = false) throws
        -> (rate: Double, cpuPer1000: Double, failed: Int) {
        let cpu0 = c.cpuSeconds() + childrenCPU()
        let t0 = now()
        // -q: the argv as given, no shell (as Dask's subprocess.run of a list); a map runs a shell line by default, as parallel.
        let r = try c.command(["map", "-q", "--progress", "none", "--results", c.state + "/results"] + argv + [":::"] + inputs)
        let seconds = now() - t0
        var failed = 0
        if r.status != 0 {
            failed = try c.journal().jobs().filter { $0.state.isFinal && $0.state != .succeeded }.count
            guard allowFailed, failed > 0 else { throw BenchFailure("drover map exited \(r.status): \(r.stderrText.suffix(400))") }
        }
        return (Double(inputs.count) / seconds, (c.cpuSeconds() + childrenCPU() - cpu0) * 1000 / Double(inputs.count), failed)
    }

    /// One trivial job at a time on an idle system: from the command's launch to the job's start,
    /// and to its result back on this machine.
    func latency() throws {
        let samples = latencySamples
        var start: [Double] = [], result: [Double] = [], submitted: [Double] = []
        try withCoordinator { c in
            let j = try c.journal()
            for _ in 0..<samples {
                let t0 = now()
                let r = try c.command(["run", "--", "true"], timeout: 60)
                let t1 = now()
                guard r.status == 0, let job = try j.jobs().max(by: { $0.id < $1.id }), let started = job.startedAt else {
                    throw BenchFailure("drover run exited \(r.status): \(r.stderrText.suffix(300))")
                }
                start.append(started - t0)
                result.append(t1 - t0)
                // From the job's row in the journal (written by `drover run`) to its recorded start.
                submitted.append(started - job.submittedAt)
            }
        }
        add("latency", "launch → job started", "s", "drover", .lower, start, note: "drover run -- true")
        add("latency", Metric.submitToStart, "s", "drover", .lower, submitted, note: "journal: submitted_at → started_at")
        add("latency", Metric.launchToResult, "s", "drover", .lower, result)
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
        add("latency", Metric.launchToResult, "s", peer.tool, .lower, pr)
        let d = try dask("latency")
        add("latency", "launch → job started", "s", "dask", .lower, d["start_s"]?.doubles ?? [], note: "client.submit in a running client")
        add("latency", Metric.launchToResult, "s", "dask", .lower, d["result_s"]?.doubles ?? [])
    }
}
