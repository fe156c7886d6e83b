import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Retention in the running agent: garbage collection on a deadline — hourly, and soon after an
/// attempt ends or a lease renewal arrives while the root is over its cap — never by polling.
extension Supervisor {
    /// Hourly (the first an hour after the start: `keep` is counted in days, and a root over
    /// its cap is collected at once). A collection reads every attempt folder, which costs
    /// about a second of CPU with 10,000 of them: the bench's idle figures caught one that
    /// ran a minute after each start.
    static let gcInterval = 3600.0
    /// At least this long between two collections triggered by the cap.
    static let gcMinimumGap = 5.0

    func startRetention() {
        rootUsage = DiskUsage.of(dir.root)
        rootCap = retention.cap(filesystemBytes: DiskUsage.filesystemSize(dir.root))
        nextGC = monotonicTime() + Self.gcInterval
        if rootUsage > rootCap { gcSoon() }
    }

    /// Re-reads `retention.json` (the root changed, or the sweep).
    func reloadRetention() {
        let policy = GarbageCollector.policy(dir)
        guard policy != retention else { return }
        retention = policy
        log.segmentSize = policy.segmentSize
        rootCap = policy.cap(filesystemBytes: DiskUsage.filesystemSize(dir.root))
        AgentLog.write("retention: keep \(GarbageCollector.age(policy.keep)), cap \(GarbageCollector.bytes(rootCap)), segments of \(GarbageCollector.bytes(policy.segmentSize))")
        if rootUsage > rootCap { gcSoon() }
    }

    /// An attempt ended: its folder is counted (roughly) and, over the cap, garbage collected soon.
    func attemptEnded(_ id: AttemptID) {
        // Its folder, spec, transitions, result, outputs, and its events.
        rootUsage += 6 * 4096 + 1024 + Int64(LocalFile.size(dir.stdoutFile(id)) ?? 0) + Int64(LocalFile.size(dir.stderrFile(id)) ?? 0)
        if rootUsage > rootCap { gcSoon() }
    }

    func gcSoon() {
        nextGC = min(nextGC, max(monotonicTime(), lastGC + Self.gcMinimumGap))
    }

    /// Removes what retention allows now and notes it in `agent.log`.
    func collectGarbage() {
        let gc = GarbageCollector(dir: dir, policy: retention)
        let plan = gc.plan(finalSeq: log.finalSeq)
        let done = gc.execute(plan)
        for r in done { if let id = r.attempt { log.forgetAttempt(id) } }
        rootCap = plan.cap
        rootUsage = plan.sizeBefore - done.reduce(0) { $0 + $1.bytes }
        lastGC = monotonicTime()
        nextGC = lastGC + Self.gcInterval
        if !done.isEmpty || rootUsage > rootCap {
            AgentLog.write("gc: " + (GCCommand.report(plan, done: done, dry: false, dir: dir).last ?? ""))
        }
    }
}
