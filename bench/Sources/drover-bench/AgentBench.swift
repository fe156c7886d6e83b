import DroverAgent
import DroverCore
#if canImport(Glibc)
import Glibc
#endif

/// Measures one real agent on a temporary root.
struct AgentBench: BenchFigures {
    let agent: String
    let quick: Bool

    func run() -> Int32 {
        let root = "/tmp/drover-bench-\(getpid())"
        let dir = StateDirectory(root: root)
        defer {
            _ = shell([agent, "stop", "--kill-jobs", "--root", root])
            _ = shell(["/bin/rm", "-rf", root])
        }
        guard shell([agent, "run", "--detach", "--heartbeat-interval", "0.5", "--root", root]) == 0,
              let pid = readNode(dir.heartbeatFile)?["pid"]?.intValue else {
            print("bench: the agent did not start")
            return 1
        }
        print("drover-agent benchmark (\(agent))")
        print(row("binary size", "\(fileSize(agent) / 1024) KiB", aim: "≤ 15 MiB"))
        print(row("agent RSS idle", "\(rss(pid) / 1024) KiB", aim: "≤ 20 MiB"))

        // Start latency: inbox file placed → the job's `running` transition.
        var latencies: [Double] = []
        let samples = quick ? 50 : 300
        for n in 1...samples {
            let id = AttemptID(job: "lat\(n)", attempt: 1)
            let placed = place(dir, id)
            while Transitions.read(dir.transitionsFile(id)).count < 3 { usleep(100) }
            let running = Transitions.read(dir.transitionsFile(id))[2]["time"]?.doubleValue ?? placed
            latencies.append(running - placed)
            while Transitions.currentState(dir.transitionsFile(id))?.isFinal != true { usleep(200) }
        }
        latencies.sort()
        print(row("start latency p50", ms(percentile(latencies, 0.5)), aim: "≤ 10 ms"))
        print(row("start latency p99", ms(percentile(latencies, 0.99)), aim: ""))

        // Throughput: trivial jobs with at most `window` in flight, as the coordinator keeps
        // a host's slots busy (placing thousands at once would only measure the process table).
        let count = quick ? 300 : 1000
        let window = 8
        let start = monotonicTime()
        let ids = (1...count).map { AttemptID(job: "tp\($0)", attempt: 1) }
        var next = 0
        var inFlight: [AttemptID] = []
        while next < ids.count || !inFlight.isEmpty {
            while inFlight.count < window && next < ids.count {
                place(dir, ids[next], durable: false)
                inFlight.append(ids[next])
                next += 1
            }
            inFlight.removeAll { LocalFile.exists(dir.resultFile($0)) }
            usleep(1000)
        }
        let rate = Double(count) / (monotonicTime() - start)
        print(row("throughput (true, \(window) in flight)", "\(Int(rate)) jobs/s", aim: "≥ 300 jobs/s"))
        print(row("agent RSS after \(count + samples) attempts", "\(rss(pid) / 1024) KiB", aim: "≤ 20 MiB"))
        // Heartbeat jitter with every CPU busy with jobs.
        let burners = (1...(2 * Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))).map { AttemptID(job: "burn\($0)", attempt: 1) }
        for id in burners { place(dir, id, shell: "while :; do :; done") }
        var times: [Double] = []
        var lastSeq = -1
        let end = monotonicTime() + (quick ? 5 : 20)
        while monotonicTime() < end {
            if let hb = readNode(dir.heartbeatFile), let seq = hb["seq"]?.intValue, seq != lastSeq, let t = hb["time"]?.doubleValue {
                lastSeq = seq
                times.append(t)
            }
            usleep(5000)
        }
        for id in burners { place(dir, id, cancel: true) }
        let jitter = zip(times.dropFirst(), times).map { abs(($0 - $1) - 0.5) }.sorted()
        print(row("heartbeat jitter p50 (full CPU)", "\((percentile(jitter, 0.5) * 1e6).rounded()) µs", aim: ""))
        print(row("heartbeat jitter max (full CPU)", "\(((jitter.last ?? 0) * 1e6).rounded()) µs", aim: "< interval (500 ms)"))
        return 0
    }

    /// Writes a command under a hidden name, then renames it into the inbox; returns the time of the rename.
    @discardableResult
    func place(_ dir: StateDirectory, _ id: AttemptID, shell: String? = nil, cancel: Bool = false, durable: Bool = true) -> Double {
        var o = JSONObject()
        if cancel {
            o.set("type", "cancel")
            o.set("job", id.job)
        } else {
            var spec = AttemptSpec(id: id, argv: shell == nil ? ["true"] : [], shell: shell)
            spec.grace = 1
            o.set("type", "start")
            o.set("spec", raw: spec.json)
        }
        let base = "\(Int(wallTime() * 1e6))-\(id.job)\(cancel ? "-cancel" : "").json"
        try? AtomicFile.write(Array(o.text.utf8), to: dir.inbox + "/." + base, durable: durable)
        let at = wallTime()
        rename(dir.inbox + "/." + base, dir.inbox + "/" + base)
        return at
    }
}
