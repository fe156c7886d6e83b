import DroverCoordinator
import DroverCore
import Foundation

/// What Drover costs with a long queue, and to put in place (the idle costs: SideBySide+Idle.swift).
extension SideBySide {
    func overhead() throws {
        let queued = quick ? 2000 : 10_000
        let sample = quick ? 5.0 : 15
        try withCoordinator { c in
            // The coordinator with every slot busy and the rest queued.
            let j = try c.journal()
            let ids = try j.submit([JobRequest](repeating: JobRequest(argv: ["sleep", "6009"]), count: queued))
            try waitFor("every slot busy", timeout: 120) { try j.jobs(in: [.running]).count >= 4 * bed.hosts.count }
            let cpu0 = c.cpuSeconds()
            let t1 = now()
            Thread.sleep(forTimeInterval: sample)
            let cpu = (c.cpuSeconds() - cpu0) / (now() - t1) * 100
            add("overhead", Metric.coordinatorRSSQueued(queued), "MiB", "drover", .lower, [c.rss() / 1_048_576])
            add("overhead", "coordinator CPU, \(queued) jobs queued", "%", "drover", .lower, [cpu])
            _ = try j.requestCancel(ids)
            try waitFor("the queue cancelled", timeout: 120) { try j.jobs(in: [.running, .queued, .dispatched]).isEmpty }
        }

        // Deploy to fresh hosts (agent and state removed), then again onto hosts that have it.
        let inventory = try bed.inventory(slots: 4)
        defer { unlink(inventory) }
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
