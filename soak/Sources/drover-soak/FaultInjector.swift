import DroverCore
import Foundation

/// Carries out the seeded fault plan, one fault at a time, and logs each step with its
/// time since the start of the run (on stdout and in the fault log file).
final class FaultInjector {
    let testbed: Testbed
    let coordinator: CoordinatorProcess
    let scratch: ScratchDisk?
    let logPath: String
    let started: Date
    private var rng: SplitMix64
    private(set) var active: Fault?
    private var activeUntil = Date.distantPast
    private var upcoming: Fault?
    private var upcomingAt = Date.distantPast
    private(set) var injected: [String: Int] = [:]
    /// When the scratch host was powered off (Unix seconds): its tmpfs agent root, events.log included, went with it.
    private(set) var scratchWipes: [Double] = []
    /// When the coordinator was stopped and continued (Unix seconds).
    private(set) var coordinatorSleeps: [(from: Double, to: Double)] = []
    private var sleepingSince: Double?
    /// Each power-off: the host and when (Unix seconds, taken just before the kill).
    private(set) var powerOffs: [(host: String, at: Double)] = []
    /// When the coordinator could not pull anything (killed or stopped), Unix seconds.
    private(set) var coordinatorOutages: [(from: Double, to: Double)] = []
    private var killedAt: Double?
    /// Each black-hole fault: the host and the time its tool was away.
    private(set) var blackHoles: [(host: String, from: Double, to: Double)] = []
    private var toolAwaySince: Double?
    /// Faults carried out that had no effect (not counted in `injected`), by kind.
    private(set) var noEffect: [String: Int] = [:]
    /// The hosts (in order) that now run a `checkpointed` job whose attempt there has a
    /// snapshot in the coordinator's store: a power-off goes to the first of them when its
    /// seeded host is not one, so power-offs exercise checkpoint restarts.
    var checkpointedHosts: () -> [String] = { [] }
    let files: RunFiles
    /// The kinds still to come of the plan's opening (`Fault.opening`).
    private var opening: [Fault.Kind]
    /// When each fault began (Unix seconds).
    private(set) var begins: [Double] = []
    /// A power-off waits at most this long for a checkpointed job to hit.
    static let powerOffPatience = 20.0
    private var waitingSaid = false
    private var logFile: UnsafeMutablePointer<FILE>?

    init(seed: UInt64, testbed: Testbed, coordinator: CoordinatorProcess, scratch: ScratchDisk?, files: RunFiles, logPath: String, started: Date) {
        self.files = files
        // Its own stream, so the fault plan does not depend on how many jobs were submitted.
        rng = SplitMix64(seed: seed ^ 0xFA17_FA17_FA17_FA17)
        opening = Fault.opening(&rng, scratchHost: scratch?.host)
        self.testbed = testbed
        self.coordinator = coordinator
        self.scratch = scratch
        self.logPath = logPath
        self.started = started
        logFile = fopen(logPath, "w")
    }

    deinit { if let logFile { fclose(logFile) } }

    var total: Int { injected.values.reduce(0, +) }

    /// Moves one fault of `kind` from `injected` to `noEffect` (it proved to change nothing).
    func uncount(_ kind: Fault.Kind) {
        let k = kind.rawValue
        guard let n = injected[k], n > 0 else { return }
        injected[k] = n > 1 ? n - 1 : nil
        noEffect[k, default: 0] += 1
    }

    /// "2 kill-agent, 1 power-off; no effect: 1 black-hole".
    var summary: String {
        let done = injected.keys.sorted().map { "\(injected[$0]!) \($0)" }.joined(separator: ", ")
        let none = noEffect.keys.sorted().map { "\(noEffect[$0]!) \($0)" }.joined(separator: ", ")
        return none.isEmpty ? done : done + "; without effect, not counted: " + none
    }

    func log(_ message: String) {
        let line = String(format: "T+%7.1fs  ", Date().timeIntervalSince(started)) + message
        say("soak: " + line)
        if let logFile {
            fputs(line + "\n", logFile)
            fflush(logFile)
        }
    }

    /// Begins the next fault when its calm gap is over (unless `startNew` is false, near the end
    /// of the fault phase), or ends the active one when its time is up.
    func tick(startNew: Bool = true) throws {
        let now = Date()
        if let fault = active {
            guard now >= activeUntil else { return }
            active = nil
            try end(fault)
            return
        }
        if upcoming == nil {
            let kind = opening.isEmpty ? nil : opening.removeFirst()
            let fault = Fault.next(&rng, hosts: testbed.hosts, scratchHost: scratch?.host, kind: kind)
            upcoming = fault
            upcomingAt = now.addingTimeInterval(fault.gap)
        }
        guard startNew, var fault = upcoming, now >= upcomingAt else { return }
        let candidates = fault.kind == .powerCycle ? checkpointedHosts() : []
        if fault.kind == .powerCycle && candidates.isEmpty && now < upcomingAt.addingTimeInterval(Self.powerOffPatience) {
            if !waitingSaid { log("power-off of \(fault.host ?? "?") waits (at most \(Int(Self.powerOffPatience)) s) for a checkpointed job with a snapshot to hit") }
            waitingSaid = true
            return
        }
        waitingSaid = false
        upcoming = nil
        begins.append(now.timeIntervalSince1970)
        if fault.kind == .powerCycle, let seeded = fault.host {
            if !candidates.isEmpty && !candidates.contains(seeded) {
                fault.host = candidates[0]
                log("power-off: \(candidates[0]) instead of the seeded \(seeded), to hit a checkpointed job")
            }
        }
        injected[fault.kind.rawValue, default: 0] += 1
        if fault.duration > 0 {
            active = fault
            activeUntil = now.addingTimeInterval(fault.duration)
        }
        try begin(fault)
    }

    private func begin(_ fault: Fault) throws {
        let host = fault.host ?? ""
        switch fault.kind {
        case .powerCycle:
            // The host may die as soon as the command starts: the time is taken before it.
            if scratch?.host == host { scratchWipes.append(Date().timeIntervalSince1970) }
            powerOffs.append((host, Date().timeIntervalSince1970))
            try testbed.kill(host)
            log("power off \(host) (back on in \(String(format: "%.1f", fault.duration)) s)")
        case .partition:
            try testbed.partition(host)
            log("partition \(host) (heal in \(String(format: "%.1f", fault.duration)) s)")
        case .agentKill:
            let pid = try testbed.shell(host, #"p=$(cat "$1/agent.lock" 2>/dev/null) && [ -n "$p" ] && kill -9 "$p" && echo "$p" || echo none"#, root(of: host))
            log("kill -9 the agent on \(host) (pid \(pid.trimmingCharacters(in: .whitespacesAndNewlines)))")
        case .agentCrash:
            let n = try testbed.shell(host, #"n=$(pgrep -c -f '[d]rover-agent' || true); pkill -9 -f '[d]rover-agent' || true; echo "$n""#)
            log("kill -9 every drover-agent process on \(host) (\(n.trimmingCharacters(in: .whitespacesAndNewlines)) processes: agent, shims, tail)")
        case .coordinatorKill:
            let pid = coordinator.pid
            killedAt = Date().timeIntervalSince1970
            coordinator.kill9()
            log("kill -9 the coordinator (pid \(pid)) (restart in \(String(format: "%.1f", fault.duration)) s)")
        case .coordinatorSleep:
            sleepingSince = Date().timeIntervalSince1970
            kill(coordinator.pid, SIGSTOP)
            log("SIGSTOP the coordinator (pid \(coordinator.pid)) (SIGCONT in \(String(format: "%.1f", fault.duration)) s)")
        case .diskFill:
            try scratch?.fill()
            log("fill the agent root on \(host) (tmpfs \(scratch?.megabytes ?? 0) MiB; free again in \(String(format: "%.1f", fault.duration)) s)")
        case .blackHole:
            if try files.removeTool(on: host, testbed) {
                toolAwaySince = Date().timeIntervalSince1970
                log("black hole: take ~/\(files.tool) away on \(host) (back in \(String(format: "%.1f", fault.duration)) s)")
            } else {
                toolAwaySince = nil
                uncount(fault.kind)
                log("black hole on \(host): no tool there to take away (not counted)")
            }
        }
    }

    private func end(_ fault: Fault) throws {
        let host = fault.host ?? ""
        switch fault.kind {
        case .powerCycle:
            try testbed.start(host)
            if scratch?.host == host { try scratch?.mount() }
            log("power on \(host)\(scratch?.host == host ? " (tmpfs agent root mounted again, empty)" : "")")
        case .partition:
            try testbed.heal(host)
            log("heal \(host)")
        case .coordinatorKill:
            try coordinator.start()
            coordinatorOutages.append((killedAt ?? 0, Date().timeIntervalSince1970))
            log("coordinator started again (pid \(coordinator.pid))")
        case .coordinatorSleep:
            kill(coordinator.pid, SIGCONT)
            coordinatorSleeps.append((sleepingSince ?? 0, Date().timeIntervalSince1970))
            coordinatorOutages.append((sleepingSince ?? 0, Date().timeIntervalSince1970))
            log("SIGCONT the coordinator (pid \(coordinator.pid))")
        case .diskFill:
            try scratch?.drain()
            log("free the agent root on \(host)")
        case .blackHole:
            guard let since = toolAwaySince else { break }
            try files.restoreTool(on: host, testbed)
            blackHoles.append((host, since, Date().timeIntervalSince1970))
            toolAwaySince = nil
            log("black hole over: ~/\(files.tool) back on \(host)")
        case .agentKill, .agentCrash:
            break
        }
    }

    /// Ends the active fault (at the end of the fault phase, or on an interrupt).
    func finish() throws {
        if let fault = active {
            try end(fault)
            active = nil
        }
    }

    /// The root of the agent on `host` as the host sees it.
    func root(of host: String) -> String {
        scratch?.host == host ? scratch!.path : Soak.defaultRoot
    }
}
