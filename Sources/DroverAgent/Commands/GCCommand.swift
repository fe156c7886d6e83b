import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `drover-agent gc [--dry-run]`: removes now what retention allows (collected attempt folders
/// past `keep` or beyond the cap, applied event-log segments) and says what and why; the agent
/// itself does the same hourly and when an attempt ends while the root is over its cap.
enum GCCommand {
    static func run(_ options: inout Options) throws(AgentError) -> Int32 {
        try options.allow(["--dry-run"])
        let dir = options.root
        let dry = options.flags.contains("--dry-run")
        guard LocalFile.exists(dir.root) else { throw .invalid("no state directory at \(dir.root)") }
        if !dry {
            try dir.prepare()
            try Ownership.checkNotForeign(dir)
        }
        let gc = GarbageCollector(dir: dir, policy: GarbageCollector.policy(dir))
        let plan = gc.plan(finalSeq: EventLogIndex.scan(dir).finalSeq)
        let done = dry ? plan.removals : gc.execute(plan)
        print(report(plan, done: done, dry: dry, dir: dir).joined(separator: "\n"))
        return 0
    }

    /// One line per removal, then a summary (also what the agent writes to `agent.log`).
    static func report(_ plan: GarbageCollector.Plan, done: [GarbageCollector.Removal], dry: Bool, dir: StateDirectory) -> [String] {
        var lines: [String] = []
        for r in done {
            let name = r.path.hasPrefix(dir.root + "/") ? String(r.path.dropFirst(dir.root.count + 1)) : r.path
            lines.append("\(dry ? "would remove" : "removed") \(name) (\(GarbageCollector.bytes(r.bytes))): \(r.why)")
        }
        let freed = done.reduce(Int64(0)) { $0 + $1.bytes }
        let attempts = done.filter { $0.attempt != nil }.count
        var summary = "root \(GarbageCollector.bytes(plan.sizeBefore)), cap \(GarbageCollector.bytes(plan.cap)); "
        summary += "\(dry ? "would remove" : "removed") \(attempts) attempt folder(s) and \(done.count - attempts) event-log segment(s), \(GarbageCollector.bytes(freed))"
        summary += "; \(plan.uncollected) ended attempt(s) kept, not collected yet"
        if plan.sizeBefore - freed > plan.cap { summary += "; still over the cap: the rest is live, uncollected or not the agent's to remove" }
        lines.append(summary)
        return lines
    }
}
