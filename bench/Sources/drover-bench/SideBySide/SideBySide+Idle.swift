import DroverCoordinator
import DroverCore
import Foundation

/// The idle scenario: what Drover costs while nothing is queued.
extension SideBySide {
    /// Seconds of an idle measurement window: 60 s in a full run (the aim's), 10 s with --quick.
    var idleWindow: Double { quick ? 10 : 60 }

    /// A coordinator connected to 3 hosts × 4 slots, nothing queued, for `idleWindow` seconds after
    /// a settling pause: the CPU of each host (every process of the host's pid namespace, read from
    /// this machine's /proc: the agent, the sshd serving the coordinator's connection, the agent's
    /// `tail`), of each agent daemon alone, and of the coordinator; the agents' RSS.
    func idle() throws {
        var host: [Double] = [], daemon: [Double] = [], rss: [Double] = [], coordinator: [Double] = []
        try withCoordinator { c in
            let (w, coord) = try measureIdle(c, bed: bed)
            for h in bed.hosts {
                if let x = w.hostPercent[h.name] { host.append(x) }
                if let x = w.agentPercent[h.name] { daemon.append(x) }
                if let x = w.after[h.name]?.agentRSS { rss.append(x / 1_048_576) }
            }
            coordinator.append(coord)
        }
        guard host.count == bed.hosts.count else { throw BenchFailure("idle: \(host.count) of \(bed.hosts.count) hosts measured (one is off?)") }
        let window = Int(idleWindow)
        add("idle", Metric.idleHost(window), "%", "drover", .lower, host, note: "per host: every process of the host (agent, sshd, tail)")
        add("idle", "agent CPU, idle \(window) s (the daemon alone)", "%", "drover", .lower, daemon)
        add("idle", Metric.idleCoordinator(window, hosts: bed.hosts.count), "%", "drover", .lower, coordinator)
        add("idle", Metric.agentRSSIdle, "MiB", "drover", .lower, rss)
        let d = try dask("idle")
        add("idle", Metric.agentRSSIdle, "MiB", "dask", .lower, d["worker_rss"]?.doubles.map { $0 / 1_048_576 } ?? [], note: "a dask worker process")
    }

    /// Waits for the coordinator to settle (hosts up, first deploy done), then measures the hosts and
    /// the coordinator over `idleWindow` seconds with nothing queued.
    func measureIdle(_ c: CoordinatorProcess, bed: Testbed) throws -> (hosts: UsageWindow, coordinatorPercent: Double) {
        let j = try c.journal()
        guard try j.jobs(in: [.running, .queued, .dispatched]).isEmpty else { throw BenchFailure("idle: jobs are queued or running") }
        Thread.sleep(forTimeInterval: quick ? 2 : 5)  // settling: the connections' start-up is not idle cost
        let before = bed.usage()
        let cpu0 = c.cpuSeconds()
        let t0 = now()
        Thread.sleep(forTimeInterval: idleWindow)  // the measurement window
        let after = bed.usage()
        let seconds = now() - t0
        let coordinator = (c.cpuSeconds() - cpu0) / seconds * 100
        return (UsageWindow(before: before, after: after, seconds: seconds), coordinator)
    }
}
