import DroverCoordinator
import DroverCore
import Foundation

/// Scenario 6: what Drover costs while it waits and works, and to put in place.
extension SideBySide {
    func overhead() throws {
        let queued = quick ? 2000 : 10_000
        let sample = quick ? 5.0 : 15
        var idleCPU: [Double] = [], idleRSS: [Double] = []
        try withCoordinator { c in
            // Agents idle: connected, nothing running.
            let before = bed.hosts.map { bed.agentUsage($0.name) }
            let t0 = now()
            Thread.sleep(forTimeInterval: sample)  // the measurement window
            for (h, b) in zip(bed.hosts, before) {
                if let b, let a = bed.agentUsage(h.name) {
                    idleCPU.append((a.cpu - b.cpu) / (now() - t0) * 100)
                    idleRSS.append(a.rss / 1_048_576)
                }
            }
            // The coordinator with every slot busy and the rest queued.
            let j = try c.journal()
            let ids = try j.submit([JobRequest](repeating: JobRequest(argv: ["sleep", "6009"]), count: queued))
            try waitFor("every slot busy", timeout: 120) { try j.jobs(in: [.running]).count >= 4 * bed.hosts.count }
            let cpu0 = bed.cpuSeconds(pid: c.pid)
            let t1 = now()
            Thread.sleep(forTimeInterval: sample)
            let cpu = (bed.cpuSeconds(pid: c.pid) - cpu0) / (now() - t1) * 100
            add("overhead", "coordinator RSS, \(queued) jobs queued", "MiB", "drover", .lower, [c.rss() / 1_048_576])
            add("overhead", "coordinator CPU, \(queued) jobs queued", "%", "drover", .lower, [cpu])
            _ = try j.requestCancel(ids)
            try waitFor("the queue cancelled", timeout: 120) { try j.jobs(in: [.running, .queued, .dispatched]).isEmpty }
        }
        add("overhead", "agent RSS, idle", "MiB", "drover", .lower, idleRSS)
        add("overhead", "agent CPU, idle", "%", "drover", .lower, idleCPU)
        let d = try dask("idle")
        add("overhead", "agent RSS, idle", "MiB", "dask", .lower, d["worker_rss"]?.doubles.map { $0 / 1_048_576 } ?? [], note: "a dask worker process")

        // Deploy to fresh hosts (agent and state removed), then again onto hosts that have it.
        let inventory = try bed.inventory(slots: 4)
        var fresh: [Double] = [], again: [Double] = []
        for _ in 0..<trials {
            for h in bed.hosts {
                _ = bed.exec(h.name, ["sh", "-c", "d=/home/dtest/.drover/\(h.name); [ -f $d/heartbeat ] && kill $(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p' $d/heartbeat) 2>/dev/null; rm -rf $d"])
            }
            for target in [0, 1] {
                let t0 = now()
                let r = try ChildProcess.run([drover, "deploy", "--inventory", inventory, "--agent", agent], timeout: 300)
                guard r.status == 0 else { throw BenchFailure("drover deploy exited \(r.status): \(r.stderrText.suffix(300))") }
                if target == 0 { fresh.append(now() - t0) } else { again.append(now() - t0) }
            }
        }
        add("overhead", "deploy to \(bed.hosts.count) fresh hosts", "s", "drover", .lower, fresh)
        add("overhead", "re-deploy (agent already there)", "s", "drover", .lower, again)
        add("overhead", "agent binary, static and stripped", "MiB", "drover", .lower, [Double(LocalFile.size(agent) ?? 0) / 1_048_576])
    }
}

extension CoordinatorProcess {
    /// Resident set size, bytes.
    func rss() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else { return 0 }
        return kb * 1024
    }
}
