import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `drover-agent stop [--kill-jobs] [--coordinator ID] [--keep-if-served]`: ask the agent
/// to exit, and wait until it has.
///
/// With `--coordinator ID` (how `drover down` calls it) only coordinator ID leaves: its lease
/// is withdrawn and `--kill-jobs` cancels only its attempts. With `--keep-if-served` the
/// agent is left running while another coordinator's lease is live.
enum StopCommand {
    static func run(_ options: inout Options) throws(AgentError) -> Int32 {
        try options.allow(["--kill-jobs", "--keep-if-served"])
        let dir = options.root
        let kill = options.flags.contains("--kill-jobs")
        let coordinator = options.values["--coordinator"]
        if let c = coordinator, !AttemptID.isValidJob(c) { throw .usage("--coordinator \"\(c)\" is not a coordinator id") }
        let holder = AgentLock.holder(dir)
        var notes: [String] = []
        if let coordinator {
            if kill {
                let n = try cancelAttempts(of: coordinator, in: dir, agentRunning: holder != nil)
                notes.append("coordinator \(coordinator): \(n) attempt(s) cancelled")
            }
            // Withdrawn, not expired: its attempts that keep running have no dead man's switch,
            // as when the agent itself stops.
            unlink(dir.leaseFile(coordinator: coordinator))
            if let legacy = readJSON(dir.leaseFile), legacy["coordinator"]?.stringValue == coordinator { unlink(dir.leaseFile) }
        }
        let tail = notes.isEmpty ? "" : "; " + notes.joined(separator: "; ")
        if options.flags.contains("--keep-if-served"), let holder {
            let others = LeaseFiles.live(dir).filter { $0 != coordinator }
            if !others.isEmpty {
                print("agent kept running: it serves \(others.count) other coordinator\(others.count == 1 ? "" : "s") (\(others.joined(separator: ", ")); pid \(holder))\(tail)")
                return 0
            }
        }
        guard let pid = holder else {
            print("no agent running in \(dir.root)\(tail)")
            return 0
        }
        // With --coordinator, the other coordinators' attempts (their leases are gone) keep running.
        let killAll = kill && coordinator == nil
        do { try AtomicFile.write(Array((killAll ? "kill-jobs\n" : "stop\n").utf8), to: dir.stopRequest) } catch { throw .system(error) }
        let end = monotonicTime() + (killAll ? 60 : 10)
        while AgentLock.holder(dir) != nil {
            if monotonicTime() > end { throw .invalid("the agent (pid \(pid)) did not stop in time; see \(dir.agentLog)") }
            sleepSeconds(0.02)
        }
        let jobs = killAll ? "; its jobs were cancelled" : (kill ? "; other jobs keep running" : "; its jobs keep running")
        print("drover-agent stopped (pid \(pid))\(tail)\(jobs)")
        return 0
    }

    /// Places a cancel command for every unfinished attempt whose spec names `coordinator`, and
    /// (when an agent runs) waits up to 60 s for them to end. Returns how many there were.
    static func cancelAttempts(of coordinator: String, in dir: StateDirectory, agentRunning: Bool) throws(AgentError) -> Int {
        try dir.prepare()
        try Ownership.checkNotForeign(dir)
        var targets: [AttemptID] = []
        for job in listDirectory(dir.attempts) {
            for n in listDirectory(dir.attempts + "/" + job).compactMap(Int.init) {
                let id = AttemptID(job: job, attempt: n)
                guard readJSON(dir.specFile(id))?["coordinator"]?.stringValue == coordinator, !isFinal(id, in: dir) else { continue }
                targets.append(id)
            }
        }
        let stamp = InboxCommand.uniqueStamp()
        for (i, id) in targets.enumerated() {
            var o = JSONObject()
            o.set("type", "cancel")
            o.set("job", id.job)
            o.set("attempt", id.attempt)
            o.set("reason", "cancelled")
            try InboxCommand.place(o.text, in: dir, stamp: stamp, order: i)
        }
        guard agentRunning else { return targets.count }
        let end = monotonicTime() + 60
        while monotonicTime() < end && targets.contains(where: { !isFinal($0, in: dir) }) { sleepSeconds(0.02) }
        if let left = targets.first(where: { !isFinal($0, in: dir) }) {
            throw .invalid("attempt \(left) of coordinator \(coordinator) did not end within 60 s of its cancel; see \(dir.agentLog)")
        }
        return targets.count
    }

    static func isFinal(_ id: AttemptID, in dir: StateDirectory) -> Bool {
        Transitions.read(dir.transitionsFile(id)).last?["state"]?.stringValue.flatMap(AttemptState.init(rawValue:))?.isFinal ?? true
    }
}
