import DroverCoordinator
import DroverCore
import Foundation

/// What one fault did, verified (docs/reliability.md, "Faults"): a fault that had no effect
/// fails the run.
struct FaultEffect {
    var kind: Fault.Kind
    var host: String?
    /// Seconds since the start of the run when it began.
    var at: Double
    var ok: Bool
    var detail: String

    var name: String { "\(kind.rawValue)\(host.map { " \($0)" } ?? "") at T+\(Int(at)) s" }
}

/// Carries out the seeded fault plan, one fault at a time: waits for each fault's
/// precondition (a host up, an agent running, …), verifies what it did, and logs each step
/// with its time since the start of the run (on stdout and in the fault log file).
final class FaultInjector {
    let testbed: Testbed
    let coordinator: CoordinatorProcess
    let scratch: ScratchDisk?
    let journalDisk: JournalDisk
    let setting: Fault.Setting
    let logPath: String
    let started: Date
    /// Seconds into the run after which no `kill-coordinator` is drawn (`Fault.coordinatorKillsEnd`).
    let coordinatorKillsEnd: Double
    var rng: SplitMix64
    var active: Fault?
    var activeUntil = Date.distantPast
    private var upcoming: Fault?
    private var upcomingFromOpening = false
    private var upcomingAt = Date.distantPast
    /// Each fault begun, with its verified effect (filled in when it ends for faults judged then).
    var effects: [FaultEffect] = []
    /// When the scratch host was powered off (Unix seconds): its tmpfs agent root, events.log included, went with it.
    var scratchWipes: [Double] = []
    /// When the coordinator was stopped and continued (Unix seconds).
    var coordinatorSleeps: [(from: Double, to: Double)] = []
    var sleepingSince: Double?
    /// Each power-off: the host and when (Unix seconds, taken just before the kill).
    var powerOffs: [(host: String, at: Double)] = []
    /// When the coordinator could not pull anything (killed or stopped), Unix seconds.
    var coordinatorOutages: [(from: Double, to: Double)] = []
    var killedAt: Double?
    /// Each black-hole fault: the host and the time its tool was away.
    var blackHoles: [(host: String, from: Double, to: Double)] = []
    var toolAwaySince: Double?
    /// When the active fault began (Unix seconds).
    var activeSince = 0.0
    /// The job a `partition-past-lease` pinned to its host (it must outlive the lease there).
    var leaseJob: (host: String, job: Int)?
    /// What the active fault did so far (judged when it ends).
    var pendingDetail = ""
    var pendingOK = false
    /// Each partition past the lease: host, time, and the job pinned there to be orphaned.
    var longPartitions: [(host: String, from: Double, to: Double, job: Int?)] = []
    /// When the scratch host's agent root was full (Unix seconds).
    var diskFulls: [(from: Double, to: Double)] = []
    /// Submissions the journal refused during the current `journal-full` fault.
    var refusedSubmissions = 0
    /// When the coordinator's state directory was full (Unix seconds).
    var journalFulls: [(from: Double, to: Double)] = []
    /// When each host was cut off from the coordinator (partitions, power-offs, a bastion off), Unix seconds.
    var cuts: [(host: String, from: Double, to: Double)] = []
    /// When the agent daemon of each host was last killed (kill-agent, kill-agent-tree), Unix seconds.
    var agentKilledAt: [String: Double] = [:]

    /// When `host`'s cut-off that begins at `since` really began for the coordinator: at a kill of
    /// its agent in the 30 s before, if any — from then on nothing reported the host's attempts
    /// (no agent logged their ends), and the coordinator judges the host from its last heartbeat,
    /// so an attempt that ended between the kill and the cut was as unreachable as one that ended
    /// after it (seed 666700: a job ended on h1 1 s before its power-off, 5 s after its agent's kill).
    func cutBegins(_ host: String, since: Double) -> Double {
        guard let killed = agentKilledAt[host], killed <= since, since - killed <= 30 else { return since }
        return killed
    }
    /// The hosts (in order) that now run a `checkpointed` job whose attempt there has a
    /// snapshot in the coordinator's store: a power-off goes to the first of them when its
    /// seeded host is not one, so power-offs exercise checkpoint restarts.
    var checkpointedHosts: () -> [String] = { [] }
    /// Submits a job of the soak (set once the coordinator runs); returns its id.
    var submit: (JobRequest, JobKind) throws -> Int = { _, _ in throw SoakFailure("no journal yet") }
    var journal: Journal?
    let files: RunFiles
    /// The kinds still to come of the plan's opening (`Fault.opening`).
    private var opening: [Fault.Kind]
    /// When each fault began (Unix seconds).
    private(set) var begins: [Double] = []
    /// A fault waits at most this long for its precondition (a power-off: for a checkpointed job to hit).
    static let patience = 30.0
    static let powerOffPatience = 20.0
    /// A partition or bastion-off lasts at most this much longer than planned while the
    /// coordinator has not turned its host(s) `suspect` yet, and never longer than `cutLimit`
    /// in all (the lease, 30 s, less its renewal interval, 10 s, less a margin: nothing orphaned).
    static let cutExtension = 10.0
    static let cutLimit = 19.0
    /// A black hole lasts at most this much longer than planned while no job failed there yet.
    static let blackHoleExtension = 40.0
    private var waitingSaid = false
    private var lastReadyCheck = Date.distantPast
    private var logFile: UnsafeMutablePointer<FILE>?

    init(seed: UInt64, testbed: Testbed, coordinator: CoordinatorProcess, scratch: ScratchDisk?, journalDisk: JournalDisk, bastion: String?,
         files: RunFiles, logPath: String, started: Date, minutes: Double) {
        self.files = files
        coordinatorKillsEnd = Fault.coordinatorKillsEnd(minutes: minutes)
        setting = Fault.Setting(hosts: testbed.hosts, scratchHost: scratch?.host, bastion: bastion)
        // Its own stream, so the fault plan does not depend on how many jobs were submitted.
        rng = SplitMix64(seed: seed ^ 0xFA17_FA17_FA17_FA17)
        opening = Fault.opening(&rng, setting)
        self.testbed = testbed
        self.coordinator = coordinator
        self.scratch = scratch
        self.journalDisk = journalDisk
        self.logPath = logPath
        self.started = started
        logFile = fopen(logPath, "w")
    }

    deinit { if let logFile { fclose(logFile) } }

    /// Whether every kind of the opening has begun (the fault phase lasts at least until then).
    var openingDone: Bool { opening.isEmpty && !upcomingFromOpening }

    /// Faults with their effect, by kind.
    var injected: [String: Int] {
        var out: [String: Int] = [:]
        for e in effects where e.ok { out[e.kind.rawValue, default: 0] += 1 }
        return out
    }

    var total: Int { effects.filter(\.ok).count }

    /// "2 kill-agent, 1 power-off; without effect: 1 black-hole".
    var summary: String {
        let done = injected.keys.sorted().map { "\(injected[$0]!) \($0)" }.joined(separator: ", ")
        let none = effects.filter { !$0.ok }.map(\.name)
        return none.isEmpty ? done : done + "; WITHOUT EFFECT: " + none.joined(separator: ", ")
    }

    func log(_ message: String) {
        let line = String(format: "T+%7.1fs  ", Date().timeIntervalSince(started)) + message
        say("soak: " + line)
        if let logFile {
            fputs(line + "\n", logFile)
            fflush(logFile)
        }
    }

    var now1970: Double { Date().timeIntervalSince1970 }

    /// Records the effect of a fault that began at `since` (Unix seconds).
    func effect(_ fault: Fault, since: Double, ok: Bool, _ detail: String) {
        effects.append(FaultEffect(kind: fault.kind, host: fault.host, at: since - started.timeIntervalSince1970, ok: ok, detail: detail))
        if !ok { log("NO EFFECT: \(fault.kind.rawValue)\(fault.host.map { " on \($0)" } ?? ""): \(detail)") }
    }

    /// Begins the next fault when its calm gap is over and its precondition holds (or its
    /// patience ran out), or ends the active one when its time is up. `remaining` is the time
    /// left in the fault phase: a fault that does not fit is not begun (unless the opening
    /// still needs it); `startNew` false stops beginning faults at all.
    func tick(startNew: Bool = true, remaining: Double = .infinity) throws {
        let now = Date()
        if let fault = active {
            guard now >= activeUntil else { return }
            if fault.kind == .blackHole, !Interrupt.pending, now < activeUntil.addingTimeInterval(Self.blackHoleExtension),
               let host = fault.host, let since = toolAwaySince, (journal?.soakToolFailures(host, since: since) ?? 1) == 0 {
                return  // no job ran into the hole yet: it stays open a little longer
            }
            if fault.kind == .partition || fault.kind == .bastionOff, !Interrupt.pending,
               now < activeUntil.addingTimeInterval(Self.cutExtension), now.timeIntervalSince1970 - activeSince < Self.cutLimit,
               let host = fault.host, !(fault.kind == .partition ? [host] : behind(host)).allSatisfy(turnedSilent) {
                return  // a busy coordinator has not noticed the silence yet: the cut lasts a little longer
            }
            active = nil
            try end(fault)
            return
        }
        if upcoming == nil {
            upcomingFromOpening = !opening.isEmpty
            let kind = opening.isEmpty ? nil : opening.removeFirst()
            let late = now.timeIntervalSince(started) >= coordinatorKillsEnd
            let fault = Fault.next(&rng, setting, kind: kind, brief: kind != nil, excluding: late ? [.coordinatorKill] : [])
            upcoming = fault
            upcomingAt = now.addingTimeInterval(fault.gap)
        }
        guard startNew, var fault = upcoming, now >= upcomingAt else { return }
        if !upcomingFromOpening && remaining < fault.duration + 5 { return }
        // Preconditions are looked at once a second (some run a command on a host).
        guard now.timeIntervalSince(lastReadyCheck) >= 1 else { return }
        lastReadyCheck = now
        let waited = now.timeIntervalSince(upcomingAt)
        if fault.kind == .powerCycle {
            let candidates = checkpointedHosts()
            if candidates.isEmpty && waited < Self.powerOffPatience {
                if !waitingSaid { log("power-off of \(fault.host ?? "?") waits (at most \(Int(Self.powerOffPatience)) s) for a checkpointed job with a snapshot to hit") }
                waitingSaid = true
                return
            }
            if let seeded = fault.host, !candidates.isEmpty && !candidates.contains(seeded) {
                fault.host = candidates[0]
                log("power-off: \(candidates[0]) instead of the seeded \(seeded), to hit a checkpointed job")
            }
        } else if let why = notReady(fault), waited < Self.patience {
            if !waitingSaid { log("\(fault.kind.rawValue)\(fault.host.map { " of \($0)" } ?? "") waits (at most \(Int(Self.patience)) s): \(why)") }
            waitingSaid = true
            return
        }
        waitingSaid = false
        upcoming = nil
        upcomingFromOpening = false
        begins.append(now.timeIntervalSince1970)
        activeSince = now.timeIntervalSince1970
        if fault.duration > 0 {
            active = fault
            activeUntil = .distantFuture
        }
        try begin(fault)
        // The duration counts from when the fault is in force and verified (under load the
        // commands and checks of `begin` take seconds: a 5 s partition must last 5 s).
        if fault.duration > 0 { activeUntil = Date().addingTimeInterval(fault.duration) }
    }

    /// Why `fault` cannot have its effect yet, or nil when it can.
    private func notReady(_ fault: Fault) -> String? {
        guard let journal else { return "no journal yet" }
        let host = fault.host ?? ""
        switch fault.kind {
        case .partition, .blackHole, .agentKill, .agentCrash:
            if journal.soakHostState(host) != "up" { return "\(host) is \(journal.soakHostState(host) ?? "unknown"), not up" }
            if fault.kind == .blackHole && journal.soakQuarantined(host) { return "\(host) is quarantined" }
            if fault.kind == .agentKill || fault.kind == .agentCrash, agentPid(host) == nil { return "no agent runs on \(host)" }
        case .longPartition:
            if journal.soakHostState(host) != "up" { return "\(host) is \(journal.soakHostState(host) ?? "unknown"), not up" }
            if leaseJob?.host != host {
                var r = JobKind.outlivesLease.request(&rng, files: files)
                r.host = host
                if let id = try? submit(r, .outlivesLease) {
                    leaseJob = (host, id)
                    log("partition-past-lease: job \(id) (sleeps 60 s) pinned to \(host), to be orphaned there")
                }
            }
            if let j = leaseJob?.job, !journal.soakRuns(j, on: host) { return "job \(j) does not run on \(host) yet" }
        case .bastionOff:
            for h in behind(host) where journal.soakHostState(h) != "up" { return "\(h), behind \(host), is \(journal.soakHostState(h) ?? "unknown")" }
        case .coordinatorKill, .coordinatorSleep, .journalFull:
            if !coordinator.running { return "the coordinator does not run" }
        case .diskFill, .powerCycle:
            break
        }
        return nil
    }

    /// Whether the coordinator turned `host` suspect or down since the active fault began.
    func turnedSilent(_ host: String) -> Bool {
        journal?.soakHostStates(host, since: activeSince).contains { $0 == "suspect" || $0 == "down" } ?? true
    }

    /// The hosts reached through `bastion`.
    func behind(_ bastion: String) -> [String] { testbed.hosts.filter { testbed.jumps[$0] == bastion } }

    /// Ends the active fault (at the end of the fault phase, or on an interrupt).
    func finish() throws {
        if let fault = active {
            active = nil
            try end(fault)
        }
    }

    /// The root of the agent on `host` as the host sees it.
    func root(of host: String) -> String {
        scratch?.host == host ? scratch!.path : Soak.defaultRoot
    }
}
