import CDroverSys
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The agent daemon: takes commands from the inbox, starts a shim per attempt, turns the
/// attempts' transitions into the event log, re-adopts attempts after a restart, marks
/// vanished ones `lost`, and enforces the coordinators' leases.
///
/// It sleeps in `FileWatch.wait` until something happens: the inbox, a live attempt's
/// `transitions`, `leases/` or the root's `stop`, `lease` or `owner.json` changes; a signal
/// arrives (SIGTERM, SIGINT, or SIGCHLD when a shim it started ends); an adopted shim's exit
/// handle fires; or a deadline passes — the next lease expiry, the sweep once per heartbeat
/// interval (owner check, and everything looked at again), and, only for adopted shims
/// without an exit handle, a liveness check every second.
final class Supervisor {
    struct Live {
        var state: AttemptState
        var coordinator: String?
        var keepRunning: Bool
        /// Its own lease (seconds without renewal), else its coordinator's lease file's ttl.
        var lease: Double? = nil
        /// Cancelled as orphaned once its lease ran out (never twice).
        var orphaned = false
        var shimPID: pid_t?
        var shimStart: String?
        var transitionsSize: Int = -1
        /// The shim this agent started: its child, so SIGCHLD says when it ends.
        var childPID: pid_t?
        /// An adopted shim's exit handle (a pidfd), watched for readability.
        var exitHandle: Int32?
        /// An adopted shim with no exit handle (no pidfd here): checked every second.
        var onTimer = false
        /// The GPU devices given to it (none are given to two live attempts).
        var gpus: [String] = []
    }

    let dir: StateDirectory
    let table = Platform.processes
    let heartbeat: HeartbeatWriter
    let watch: FileWatch
    var log: EventLog
    var live: [AttemptID: Live] = [:]
    var lease = LeaseWatch()
    var pendingEvents: [String] = []
    /// Final transitions among `pendingEvents` (by index): their `seq` is noted once written.
    var pendingFinals: [(index: Int, id: AttemptID)] = []
    /// Retention: the policy, when to collect garbage next, and the root's estimated size.
    var retention: RetentionPolicy
    var nextGC = 0.0
    var lastGC = -Double.infinity
    var rootUsage: Int64 = 0
    var rootCap: Int64 = RetentionPolicy.defaultCapBytes
    /// Attempts accepted in this inbox batch, started once the batch is durable.
    var toStart: [AttemptID] = []
    /// Inbox files handled in this tick, removed once their effects are durable.
    var handledInbox: [String] = []
    /// Refused inbox files that could be neither moved aside nor removed (skipped from then on).
    var unmovable: Set<String> = []
    /// When an inbox file could not be read (e.g. too many open files), the time to try again.
    var inboxRetryAt: Double?
    /// Live attempts by the path of their watched transitions file, and by exit handle.
    var attemptByTransitions: [String: AttemptID] = [:]
    var attemptByHandle: [Int32: AttemptID] = [:]
    /// Live attempts with checkpoints, by their watched `checkpoints` folder.
    var attemptByCheckpoints: [String: AttemptID] = [:]
    /// Live attempts whose transitions file could not be watched: re-read every 250 ms.
    var unwatched: Set<AttemptID> = []
    var nextUnwatchedPoll = 0.0
    var nextShimTimer = 0.0
    /// The handoff pipes of the shims this agent started (by pid), and the idle ones, most
    /// recently idle last (`Supervisor+Shims.swift`).
    var shimPipes: [pid_t: ShimPipe] = [:]
    var idleShims: [pid_t] = []
    var signals: SignalWake?
    let executable = currentExecutable()
    /// Whether this agent found the directory owned by another machine (that looked dead).
    let claim: Ownership.Claim

    init(dir: StateDirectory, heartbeatInterval: Double, claim: Ownership.Claim = .ours, watch: FileWatch = .forAgent()) throws(AgentError) {
        self.dir = dir
        self.claim = claim
        self.watch = watch
        heartbeat = HeartbeatWriter(directory: dir, interval: heartbeatInterval)
        retention = GarbageCollector.policy(dir)
        log = try EventLog(dir: dir, segmentSize: retention.segmentSize)
    }

    /// Runs until SIGTERM/SIGINT or `drover-agent stop`.
    func run() throws(AgentError) {
        let signals: SignalWake
        do { signals = try SignalWake([SIGTERM, SIGINT, SIGCHLD, HeartbeatWriter.ownerChangedSignal]) } catch { throw .system(error) }
        self.signals = signals
        signal(SIGPIPE, SIG_IGN)
        ReapedChildren.recording = true
        watch.watch(descriptor: signals.descriptor)
        unlink(dir.stopRequest)
        watchStateFolders()
        let me = MachineIdentity.current
        if case .takenOver(let previous) = claim {
            emit(.ownerChanged(previousMachineID: previous.machineID, previousHostname: previous.hostname,
                               machineID: me.machineID, hostname: me.hostname))
            AgentLog.write("took over \(dir.root) from \(previous.described) (boot \(previous.bootID.prefix(8))), whose agent looks dead; its unfinished attempts are marked lost (their processes ran there, or in an earlier boot, not here)")
        }
        JobCgroup.handDownToShims()
        // Beat first: recovery reads every attempt folder of the root, and with tens of
        // thousands kept (retention) that takes seconds; `run --detach`, a second `run` and the
        // coordinator's deploy wait for the first beat, and the agent is alive meanwhile.
        do { try heartbeat.beat() } catch { throw .system(error) }
        heartbeat.start()
        recover()
        startRetention()
        emit(.agentStarted(pid: Int(getpid()), machineID: me.machineID, hostname: me.hostname))
        flushEvents()
        AgentLog.write("agent \(AgentInfo.version) (build \(AgentInfo.buildHash)) running in \(dir.root) with \(Platform.processTableName), waiting with \(watch.mechanism)\(watch.fallbackReason.map { " (\($0))" } ?? "")")
        var killJobs = false
        var displacedBy: StateOwner?
        var wake = FileWatch.Wake()
        wake.overflowed = true  // the first pass looks at everything
        var nextSweep = 0.0
        while true {
            signals.drain()
            let stopSignal = signals.take(SIGTERM)
            if signals.take(SIGINT) || stopSignal { break }
            let now = monotonicTime()
            // Every `sweepInterval`, and after the kernel dropped events, everything is looked
            // at again: nothing is missed for long even if an event was.
            let sweep = wake.overflowed || now >= nextSweep
            if sweep {
                nextSweep = now + sweepInterval
                watchStateFolders()
            }
            let rootChanged = sweep || wake.paths.contains(dir.root) || signals.take(HeartbeatWriter.ownerChangedSignal)
            if rootChanged {
                // Another machine took the directory over (it judged this agent dead): stop
                // at once, writing nothing more; the jobs here keep running under their shims.
                if let other = Ownership.takenOverBy(dir) {
                    displacedBy = other
                    break
                }
                if let request = try? LocalFile.read(dir.stopRequest) {
                    killJobs = String(decoding: request, as: UTF8.self).contains("kill-jobs")
                    break
                }
                reloadRetention()
            }
            if sweep || wake.paths.contains(dir.inbox) || inboxRetryAt.map({ now >= $0 }) == true { processInbox() }
            if sweep {
                pollTransitions()
            } else {
                for path in wake.paths { if let id = attemptByTransitions[path] ?? attemptByCheckpoints[path] { pollTransitions(only: id) } }
                if !unwatched.isEmpty && now >= nextUnwatchedPoll {
                    for id in unwatched { pollTransitions(only: id) }
                }
            }
            checkShims(childSignal: signals.take(SIGCHLD), readable: wake.descriptors, now: now)
            if rootChanged || wake.paths.contains(dir.leases) || lease.files.contains(where: wake.paths.contains)
                || nextLeaseDeadline.map({ now >= $0 }) == true {
                checkLease()
            }
            commit()
            retireIdleShims(now: monotonicTime())
            if monotonicTime() >= nextGC { collectGarbage() }
            heartbeat.setRunning(live.values.filter { $0.state == .running || $0.state == .starting }.count)
            followAttempts(now: now)
            heartbeat.setWakeups(watch.wakeups)
            wake = watch.wait(timeout: max(0, nextDeadline(sweep: nextSweep) - monotonicTime()))
        }
        if let other = displacedBy {
            heartbeat.stop()
            AgentLog.write("stopping: \(dir.root) now belongs to \(other.described); \(live.count) attempt(s) left to their shims, no more events written")
            throw .foreignOwner("the state directory \(dir.root) was taken over by the agent of \(other.described); this agent stopped")
        }
        if killJobs { cancelAll(reason: "cancelled", graceDeadline: 30) }
        emit(.agentStopped(pid: Int(getpid())))
        flushEvents()
        heartbeat.stop()
        unlink(dir.stopRequest)
        AgentLog.write("agent stopped; \(live.count) attempt(s) left running under their shims")
    }

    /// The root (only `stop`, `lease` and `owner.json`: not the heartbeat or the logs), the
    /// inbox and `leases/`; again at each sweep, in case one was removed and made again.
    private func watchStateFolders() {
        watch.watch(dir.root, entries: ["stop", "lease", "owner.json", "retention.json"])
        watch.watch(dir.inbox)
        watch.watch(dir.leases)
    }

    /// The earliest time the loop must wake without an event.
    /// How often everything is looked at again without an event: with inotify or kqueue only a
    /// lost event (there is none without an overflow, which forces a sweep at once) could need
    /// it, so every 30 s (or the heartbeat interval, if longer); when polling, every beat. The
    /// owner check, which a write by another machine over NFS needs, is the heartbeat
    /// thread's, before each beat.
    private var sweepInterval: Double {
        if case .polling = watch.mechanism { return heartbeat.interval }
        return max(Self.eventSweepInterval, heartbeat.interval)
    }
    static let eventSweepInterval = 30.0

    private func nextDeadline(sweep: Double) -> Double {
        var t = min(sweep, nextGC)
        // A lease expires once strictly more than its ttl has passed.
        if let expiry = nextLeaseDeadline { t = min(t, expiry + 0.001) }
        if let retry = inboxRetryAt { t = min(t, retry) }
        if !unwatched.isEmpty { t = min(t, nextUnwatchedPoll) }
        if live.values.contains(where: \.onTimer) { t = min(t, nextShimTimer) }
        if let retire = nextShimRetirement { t = min(t, retire) }
        return t
    }

    // MARK: - Recovery

    /// Re-adopts attempts that were running before this agent started.
    private func recover() {
        for job in listDirectory(dir.attempts) {
            for n in listDirectory(dir.attempts + "/" + job) {
                guard let a = Int(n), let id = AttemptID("\(job)/\(a)") else { continue }
                let transitions = Transitions.read(dir.transitionsFile(id))
                let state = transitions.last?["state"]?.stringValue.flatMap(AttemptState.init(rawValue:))
                let logged = log.loggedTransitions[id] ?? 0
                let lines = transitions.count
                if state?.isFinal == true, !LocalFile.exists(dir.resultFile(id)), let last = transitions.last {
                    rebuildResult(id, from: last)
                }
                guard state?.isFinal == false || lines > logged else { continue }
                let spec = readJSON(dir.specFile(id))
                let processes = AttemptProcesses(transitionsFile: dir.transitionsFile(id))
                live[id] = Live(
                    state: logged > 0 ? (previousState(id, upTo: logged) ?? .accepted) : .accepted,
                    coordinator: spec?["coordinator"]?.stringValue, keepRunning: spec?["keep_running"]?.boolValue ?? false,
                    lease: spec?["lease"]?.doubleValue,
                    shimPID: processes.shimPID, shimStart: processes.shimStart,
                    gpus: spec?["gpus"]?["assigned"]?.stringArray ?? [])
                follow(id)
                if state?.isFinal == false, case .takenOver(let previous) = claim {
                    // Its shim and job ran on the other machine: pids mean nothing here, so
                    // nothing is killed; the attempt ends `lost`.
                    loseForeign(id, previous: previous)
                    continue
                }
                if state == .accepted && live[id]?.shimPID == nil { startShim(id) }
            }
        }
        if !live.isEmpty { AgentLog.write("re-adopting \(live.count) attempt(s)") }
    }

    /// Ends an unfinished attempt of the machine this agent took the directory over from.
    private func loseForeign(_ id: AttemptID, previous: StateOwner) {
        var f = JSONObject()
        let where_ = previous.machineID == MachineIdentity.current.machineID ? "this machine's earlier boot (\(previous.hostname))" : previous.described
        f.set("error", "it ran on \(where_), whose agent stopped beating; this agent (on \(MachineIdentity.current.hostname)) took the state directory over and touched none of its processes")
        f.set("leftovers_killed", 0)
        f.set("ended_at", wallTime())
        do { try AttemptEnd.record(.lost, fields: f, dir: dir, id: id) } catch { AgentLog.write("cannot mark \(id) lost: \(error)") }
        live[id]?.shimPID = nil
        live[id]?.transitionsSize = -1
        pollTransitions(only: id)
    }

    /// Writes result.json again from the final transition (after a power loss took it).
    private func rebuildResult(_ id: AttemptID, from last: JSONNode) {
        guard let members = last.objectMembers, let reason = last["state"]?.stringValue else { return }
        let fields = members.filter { !["n", "state", "time"].contains($0.key) }.map { JSONText.quote($0.key) + ":" + $0.value.jsonText }
        let text = AttemptEnd.resultText(id, reason: reason, fields: "{" + fields.joined(separator: ",") + "}")
        try? AtomicFile.write(Array((text + "\n").utf8), to: dir.resultFile(id))
    }

    private func previousState(_ id: AttemptID, upTo n: Int) -> AttemptState? {
        let lines = Transitions.read(dir.transitionsFile(id))
        guard n >= 1, n <= lines.count else { return nil }
        return lines[n - 1]["state"]?.stringValue.flatMap(AttemptState.init(rawValue:))
    }
}

extension FileWatch {
    /// The agent's watch: the kernel's mechanism, or with `DROVER_AGENT_FILEWATCH=poll` the
    /// portable fallback (every 0.5 s; `poll:SECONDS` for another interval), which tests use.
    static func forAgent(defaultPolling: Double = 0.5) -> FileWatch {
        guard let value = LocalUser.environment("DROVER_AGENT_FILEWATCH"), value.hasPrefix("poll") else { return FileWatch() }
        let interval = value.hasPrefix("poll:") ? Double(value.dropFirst(5)) ?? defaultPolling : defaultPolling
        return FileWatch(pollingEvery: max(0.01, interval))
    }
}
