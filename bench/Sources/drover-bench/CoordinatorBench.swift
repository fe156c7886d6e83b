import CDroverSys
import DroverCoordinator
import DroverCore
import Foundation

/// Measures a real coordinator on the testbed: dead-host detection, dispatch throughput,
/// submit-to-start latency, and its memory and CPU with 10 hosts and 10,000 queued jobs.
struct CoordinatorBench: BenchFigures {
    let drover: String
    let testbed: String
    let quick: Bool
    var inventory: String { testbed + "/hosts.json" }

    func run() -> Int32 {
        print("drover coordinator benchmark (\(drover), testbed \(testbed))")
        do {
            try detection()
            try dispatch()
            try memory()
            return 0
        } catch {
            print("bench: \(error)")
            return 1
        }
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    /// A coordinator on a fresh state directory.
    final class Running {
        let state: String
        let pid: pid_t
        init(drover: String, inventory: String, arguments: [String] = []) throws {
            state = "/tmp/drover-bench-state-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try StateLocation(explicit: state).prepare()
            let fd = open(state + "/coordinator.log", O_WRONLY | O_CREAT | O_APPEND, 0o600)
            defer { close(fd) }
            let argv = [drover, "coordinator", "--state", state, "--inventory", inventory] + arguments
            let c = argv.map { strdup($0) } + [nil]
            defer { c.forEach { free($0) } }
            var err: Int32 = 0
            pid = drover_spawn_session(drover, c, environ, fd, &err)
            guard pid > 0 else { throw Failure(description: "cannot start the coordinator (errno \(err))") }
        }

        func journal() throws -> Journal { try Journal(StateLocation(explicit: state)) }

        func stop(drover: String, inventory: String) {
            _ = try? ChildProcess.run([drover, "down", "--kill-jobs", "--state", state, "--inventory", inventory], timeout: 120)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            _ = try? ChildProcess.run(["/bin/rm", "-rf", state])
        }
    }

    func wait(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while try !condition() {
            if Date() > deadline { throw Failure(description: "timed out waiting for \(what)") }
            usleep(10_000)
        }
    }

    func testbedScript(_ args: String...) throws {
        let r = try ChildProcess.run([testbed + "/../scripts/testbed"] + args, timeout: 120)
        if r.status != 0 { throw Failure(description: "scripts/testbed \(args.joined(separator: " ")): \(r.stderrText)") }
    }

    func allUp(_ j: Journal, _ count: Int = 3) throws -> Bool {
        try j.hosts().filter { $0.state == "up" }.count >= count
    }

    // MARK: Dead-host detection, with every CPU busy

    func detection() throws {
        let c = try Running(drover: drover, inventory: inventory)
        defer { c.stop(drover: drover, inventory: inventory) }
        let j = try c.journal()
        try wait("3 hosts up", timeout: 60) { try allUp(j) }
        // Full CPU load on h1 and h2 for the whole measurement (the hosts share this machine's CPUs).
        var burn = JobRequest(shell: "end=$(($(date +%s) + 600)); while [ $(date +%s) -lt $end ]; do :; done")
        for h in ["h1", "h2"] {
            burn.host = h
            _ = try j.submit(burn)
        }
        var detect: [Double] = []
        var replace: [Double] = []
        let trials = quick ? 1 : 3
        for _ in 0..<trials {
            var victim = JobRequest(argv: ["sleep", "600"])
            victim.labels = ["index": "3"]
            let id = try j.submit(victim)
            try wait("the job on h3 to run", timeout: 60) { try j.job(id)?.state == .running }
            victim.labels = [:]
            // Let it run elsewhere once h3 is gone.
            try j.db.run("UPDATE jobs SET request=? WHERE id=?", .text(String(decoding: try JSONEncoder().encode(JobRequest(argv: ["sleep", "600"])), as: UTF8.self)), .int(Int64(id)))
            let killed = Date().timeIntervalSince1970
            try testbedScript("kill", "h3")
            try wait("h3 down", timeout: 60) { try j.hosts().first { $0.name == "h3" }?.state == "down" }
            let down = try j.events().last { $0.kind == "host" && $0.host == "h3" && $0.state == "down" }?.time ?? 0
            try wait("the replacement to start", timeout: 60) { try j.attempt(id, 2)?.startedAt != nil }
            detect.append(down - killed)
            replace.append((try j.attempt(id, 2)?.startedAt ?? 0) - killed)
            _ = try j.requestCancel([id])
            try testbedScript("start", "h3")
            try wait("h3 up again", timeout: 60) { try allUp(j) && j.job(id)?.state.isFinal == true }
        }
        let falseAlarms = try j.events().filter { $0.kind == "host" && ($0.host == "h1" || $0.host == "h2") && ($0.state == "suspect" || $0.state == "down") }.count
        detect.sort()
        replace.sort()
        print(row("dead-host detection (median of \(trials))", String(format: "%.2f s", percentile(detect, 0.5)), aim: "≤ dead-after (10 s) + 1 s"))
        print(row("dead-host detection (worst)", String(format: "%.2f s", detect.last ?? 0), aim: ""))
        print(row("power-off → replacement running", String(format: "%.2f s", percentile(replace, 0.5)), aim: ""))
        print(row("false alarms on busy hosts", "\(falseAlarms)", aim: "0"))
    }

    // MARK: Throughput and latency over 3 hosts

    func dispatch() throws {
        // Trivial jobs use no CPU: 16 slots per host measure dispatch, not the 2 CPUs.
        let text = try String(contentsOfFile: inventory, encoding: .utf8).replacingOccurrences(of: "\"defaults\": {", with: "\"defaults\": { \"slots\": 16,")
        let sixteen = "/tmp/drover-bench-slots-\(getpid()).json"
        try text.write(toFile: sixteen, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: sixteen) }
        let c = try Running(drover: drover, inventory: sixteen)
        defer { c.stop(drover: drover, inventory: sixteen) }
        let j = try c.journal()
        try wait("3 hosts up", timeout: 60) { try allUp(j) }

        // Latency: one job at a time, submit → the agent's `running` transition.
        var latencies: [Double] = []
        for _ in 0..<(quick ? 20 : 100) {
            let id = try j.submit(JobRequest(argv: ["true"]))
            try wait("a job to start", timeout: 30) { try j.attempt(id, 1)?.startedAt != nil }
            let job = try j.job(id)!
            latencies.append((try j.attempt(id, 1)?.startedAt ?? 0) - job.submittedAt)
            try wait("the job to end", timeout: 30) { try j.job(id)?.state.isFinal == true }
        }
        latencies.sort()
        print(row("submit → start latency p50", ms(percentile(latencies, 0.5)), aim: "≤ 20 ms"))
        print(row("submit → start latency p99", ms(percentile(latencies, 0.99)), aim: ""))

        // Throughput: a burst of trivial jobs, submitted at once, until the last ends.
        let count = quick ? 300 : 1000
        let start = Date()
        let ids = try j.submit([JobRequest](repeating: JobRequest(argv: ["true"]), count: count))
        try wait("\(count) jobs to end", timeout: 600) {
            try j.db.query("SELECT COUNT(*) AS n FROM jobs WHERE id>=? AND state IN ('succeeded','failed','cancelled')", .int(Int64(ids[0]))).first?.int("n") == count
        }
        let rate = Double(count) / Date().timeIntervalSince(start)
        let failed = try j.jobs(ids).filter { $0.state != .succeeded }.count
        print(row("dispatch throughput (\(count) jobs, 3 hosts × 16 slots)", String(format: "%.0f jobs/s", rate), aim: "≥ 300 jobs/s"))
        if failed > 0 { print(row("  of which did not succeed", "\(failed)", aim: "0")) }
    }

    // MARK: Memory and CPU with 10 hosts and 10,000 queued jobs

    func memory() throws {
        // 10 hosts: the 3 testbed hosts, and 7 more agents on them under other roots.
        let base = try String(contentsOfFile: inventory, encoding: .utf8)
        guard let node = try? JSONParser.parse(base), let defaults = node["defaults"]?.jsonText else { throw Failure(description: "cannot read \(inventory)") }
        var hosts: [String] = []
        for i in 1...10 {
            let h = (i - 1) % 3 + 1
            hosts.append("{\"name\":\"n\(i)\",\"address\":\"10.250.0.\(10 + h)\",\"root\":\"~/.drover-bench-\(i)\"}")
        }
        let tenHosts = "/tmp/drover-bench-hosts-\(getpid()).json"
        try "{\"defaults\":\(defaults),\"hosts\":[\(hosts.joined(separator: ","))]}".write(toFile: tenHosts, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: tenHosts) }
        let c = try Running(drover: drover, inventory: tenHosts)
        defer { c.stop(drover: drover, inventory: tenHosts) }
        let j = try c.journal()
        try wait("10 hosts up", timeout: 120) { try allUp(j, 10) }
        let count = quick ? 2000 : 10_000
        _ = try j.submit([JobRequest](repeating: JobRequest(argv: ["sleep", "600"]), count: count))
        try wait("every slot busy", timeout: 120) { try j.jobs(in: [.running]).count >= 20 }
        let cpu0 = cpuSeconds(Int(c.pid))
        let t0 = Date()
        sleep(quick ? 5 : 15)
        let cpu = (cpuSeconds(Int(c.pid)) - cpu0) / Date().timeIntervalSince(t0)
        print(row("coordinator RSS, 10 hosts, \(count) queued", "\(rss(Int(c.pid)) / 1_048_576) MiB", aim: "≤ 100 MB"))
        print(row("coordinator CPU, same", String(format: "%.1f %%", cpu * 100), aim: ""))
    }
}
