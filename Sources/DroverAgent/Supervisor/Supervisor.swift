import CDroverSys
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

nonisolated(unsafe) private var stopSignalled: sig_atomic_t = 0

/// The agent daemon: takes commands from the inbox, starts a shim per attempt, turns the
/// attempts' transitions into the event log, re-adopts attempts after a restart, marks
/// vanished ones `lost`, and enforces the coordinator's lease.
final class Supervisor {
    struct Live {
        var state: AttemptState
        var coordinator: String?
        var keepRunning: Bool
        var shimPID: pid_t?
        var shimStart: String?
        var transitionsSize: Int = -1
        var lastCheck: Double = 0
    }

    let dir: StateDirectory
    let table = Platform.processes
    let heartbeat: HeartbeatWriter
    private var log: EventLog
    private var live: [AttemptID: Live] = [:]
    private var lease = LeaseWatch()
    private var pendingEvents: [String] = []
    /// Attempts accepted in this inbox batch, started once the batch is durable.
    private var toStart: [AttemptID] = []
    /// Inbox files handled in this tick, removed once their effects are durable.
    private var handledInbox: [String] = []
    /// Refused inbox files that could be neither moved aside nor removed (skipped from then on).
    private var unmovable: Set<String> = []
    private let executable = currentExecutable()
    /// Whether this agent found the directory owned by another machine (that looked dead).
    private let claim: Ownership.Claim
    private var lastLeaseCheck = 0.0
    private var lastOwnerCheck = 0.0

    init(dir: StateDirectory, heartbeatInterval: Double, claim: Ownership.Claim = .ours) throws(AgentError) {
        self.dir = dir
        self.claim = claim
        heartbeat = HeartbeatWriter(directory: dir, interval: heartbeatInterval)
        log = try EventLog(path: dir.eventLog)
    }

    /// Runs until SIGTERM/SIGINT or `drover-agent stop`.
    func run() throws(AgentError) {
        signal(SIGTERM) { _ in stopSignalled = 1 }
        signal(SIGINT) { _ in stopSignalled = 1 }
        signal(SIGPIPE, SIG_IGN)
        unlink(dir.stopRequest)
        let me = MachineIdentity.current
        if case .takenOver(let previous) = claim {
            emit(["type": "owner_changed", "previous_machine_id": previous.machineID, "previous_hostname": previous.hostname,
                  "machine_id": me.machineID, "hostname": me.hostname])
            AgentLog.write("took over \(dir.root) from \(previous.described) (boot \(previous.bootID.prefix(8))), whose agent looks dead; its unfinished attempts are marked lost (their processes ran there, or in an earlier boot, not here)")
        }
        recover()
        emit(["type": "agent_started", "machine_id": me.machineID, "hostname": me.hostname], extra: ["pid": Int(getpid())])
        flushEvents()
        do { try heartbeat.beat() } catch { throw .system(error) }
        heartbeat.start()
        AgentLog.write("agent \(AgentInfo.version) (build \(AgentInfo.buildHash)) running in \(dir.root) with \(Platform.processTableName)")
        var killJobs = false
        var displacedBy: StateOwner?
        while true {
            if stopSignalled != 0 { break }
            if monotonicTime() - lastOwnerCheck >= 1 {
                lastOwnerCheck = monotonicTime()
                // Another machine took the directory over (it judged this agent dead): stop
                // at once, writing nothing more; the jobs here keep running under their shims.
                if let other = Ownership.takenOverBy(dir) {
                    displacedBy = other
                    break
                }
            }
            if let request = try? LocalFile.read(dir.stopRequest) {
                killJobs = String(decoding: request, as: UTF8.self).contains("kill-jobs")
                break
            }
            let busy = processInbox()
            pollTransitions()
            checkShims()
            checkLease()
            reapChildren()
            commit()
            heartbeat.setRunning(live.values.filter { $0.state == .running || $0.state == .starting }.count)
            if !busy { sleepSeconds(0.002) }
        }
        if let other = displacedBy {
            heartbeat.stop()
            AgentLog.write("stopping: \(dir.root) now belongs to \(other.described); \(live.count) attempt(s) left to their shims, no more events written")
            throw .foreignOwner("the state directory \(dir.root) was taken over by the agent of \(other.described); this agent stopped")
        }
        if killJobs { cancelAll(reason: "cancelled", graceDeadline: 30) }
        emit(["type": "agent_stopped"], extra: ["pid": Int(getpid())])
        flushEvents()
        heartbeat.stop()
        unlink(dir.stopRequest)
        AgentLog.write("agent stopped; \(live.count) attempt(s) left running under their shims")
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
                    shimPID: processes.shimPID, shimStart: processes.shimStart)
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

    // MARK: - Inbox

    /// Handles every command file in the inbox, in name order; returns whether there were any.
    ///
    /// The new attempts' files are written without fsync; `commit()` then makes the whole
    /// batch durable before the inbox files are removed and the shims start: a crash at any
    /// point leaves either the command in the inbox or the accepted attempt on disk.
    private func processInbox() -> Bool {
        let names = listDirectory(dir.inbox).filter { !$0.hasPrefix(".") && $0.hasSuffix(".json") && !unmovable.contains($0) }.sorted()
        guard !names.isEmpty else { return false }
        var handled: [String] = []
        for name in names {
            let path = dir.inbox + "/" + name
            // Only this user's own regular files are commands: a file another user owns or may
            // write, or a symbolic link, is moved aside unread (never followed).
            let bytes: [UInt8]
            do throws(PrivatePath.Problem) {
                bytes = try PrivatePath.readOwnFile(path)
            } catch {
                if case .system = error { continue }
                reject(name, reason: "not executed: \(error)")
                continue
            }
            do throws(AgentError) {
                let node: JSONNode
                do { node = try JSONParser.parse(bytes) } catch { throw AgentError.invalid("malformed JSON at line \(error.position.line), column \(error.position.column): \(error.message)") }
                try handle(node, file: name)
                handled.append(path)
            } catch {
                reject(name, reason: error.description)
            }
        }
        handledInbox += handled
        return true
    }

    /// Makes this tick's work durable with one `syncfs` (new attempts and new events
    /// together), then removes the handled inbox files and starts the new attempts' shims.
    private func commit() {
        guard !pendingEvents.isEmpty || !handledInbox.isEmpty else { return }
        flushEvents(durable: false)
        if LocalUser.environment("DROVER_NOSYNC") == nil { syncFilesystem(dir.root) }
        for path in handledInbox { unlink(path) }
        handledInbox.removeAll()
        for id in toStart { startShim(id) }
        toStart.removeAll()
    }

    private func handle(_ node: JSONNode, file: String) throws(AgentError) {
        guard let type = node["type"]?.stringValue else { throw .invalid("missing \"type\" (start, cancel or signal)") }
        switch type {
        case "start":
            guard let specNode = node["spec"] else { throw .invalid("a start command needs \"spec\"") }
            switch AttemptSpec.parse(specNode, file: file + " spec") {
            case .failure(let e): throw .invalid(e.description)
            case .success(let spec): try accept(spec)
            }
        case "cancel", "signal":
            guard let job = node["job"]?.stringValue else { throw .invalid("a \(type) command needs \"job\"") }
            let attempt = node["attempt"]?.intValue
            let targets = live.keys.filter { $0.job == job && (attempt == nil || $0.attempt == attempt) }
            if targets.isEmpty { throw .invalid("no live attempt of \(job)\(attempt.map { "/\($0)" } ?? "")") }
            if type == "cancel" {
                // `stale`: the coordinator gave up on the attempt; it ends `cancelled` with "stale":true.
                let reason = node["reason"].map { $0.stringValue ?? "" } ?? "cancelled"
                guard ["cancelled", "stale", "orphaned"].contains(reason) else {
                    throw .invalid("unknown cancel reason \(node["reason"]!.jsonText); use \"cancelled\" or \"stale\"")
                }
                for id in targets { requestCancel(id, reason: reason) }
            } else {
                guard let name = node["signal"]?.stringValue, let sig = signalNumber(name) else { throw .invalid("unknown signal name") }
                for id in targets {
                    if let pgid = AttemptProcesses(transitionsFile: dir.transitionsFile(id)).jobPID, pgid > 1 { kill(-pgid, sig) }
                }
            }
        default:
            throw .invalid("unknown command type \"\(type)\"; use start, cancel or signal")
        }
    }

    /// Records a new attempt (spec, then `accepted`), then starts its shim.
    private func accept(_ spec: AttemptSpec) throws(AgentError) {
        let id = spec.id
        let attemptDir = dir.attemptDirectory(id)
        if LocalFile.exists(dir.transitionsFile(id)) { throw .invalid("attempt \(id) already exists; attempts are never reused") }
        try StateDirectory.makeDirectory(attemptDir)
        // Written in place: until the `accepted` line exists the attempt does not, and a
        // command whose spec write was cut short is still in the inbox and is written again.
        do { try writeFile(Array((spec.json + "\n").utf8), to: dir.specFile(id)) } catch { throw .system(error) }
        try Transitions.append(.accepted, to: dir.transitionsFile(id))
        live[id] = Live(state: .accepted, coordinator: spec.coordinator, keepRunning: spec.keepRunning)
        pollTransitions(only: id)
        toStart.append(id)
    }

    private func startShim(_ id: AttemptID) {
        do {
            let pid = try spawnSession([executable, "shim", dir.root, id.description], output: dir.agentLog)
            live[id]?.shimPID = pid
            live[id]?.shimStart = nil  // learned from the shim's `starting` transition
        } catch {
            AgentLog.write("cannot start the shim of \(id): \(error)")
            markLost(id, why: "the shim could not be started: \(error)")
        }
    }

    private func reject(_ name: String, reason: String) {
        let from = dir.inbox + "/" + name
        let to = dir.rejected + "/" + name
        if rename(from, to) != 0 {
            // Never handle the same file again: remove it (this user owns the inbox folder).
            let e = SystemError.current("move to \(to)", path: from)
            if unlink(from) != 0 && rmdir(from) != 0 {
                unmovable.insert(name)
                AgentLog.write("cannot move aside or remove inbox/\(name) (\(e)); ignoring it from now on")
            }
        }
        try? AtomicFile.write(Array((reason + "\n").utf8), to: to + ".reason")
        emit(["type": "rejected", "file": name, "reason": reason])
        AgentLog.write("rejected inbox/\(name): \(reason)")
    }

    func requestCancel(_ id: AttemptID, reason: String) {
        try? AtomicFile.write(Array((reason + "\n").utf8), to: dir.cancelFile(id))
    }

    // MARK: - Transitions → events

    private func pollTransitions(only: AttemptID? = nil) {
        for id in only.map({ [$0] }) ?? Array(live.keys) {
            var st = stat()
            guard stat(dir.transitionsFile(id), &st) == 0 else { continue }
            guard Int(st.st_size) != live[id]?.transitionsSize else { continue }
            live[id]?.transitionsSize = Int(st.st_size)
            let lines = Transitions.read(dir.transitionsFile(id))
            let logged = log.loggedTransitions[id] ?? 0
            guard lines.count > logged else { continue }
            for line in lines[logged...] {
                guard let s = line["state"]?.stringValue.flatMap(AttemptState.init(rawValue:)), let n = line["n"]?.intValue else { continue }
                let from = live[id]?.state
                if let from, n > 1, !from.canMove(to: s) {
                    AgentLog.write("bug: impossible transition \(from.rawValue) → \(s.rawValue) for \(id); not applied")
                    continue
                }
                var e = JSONObject()
                e.set("type", "transition")
                e.set("job", id.job)
                e.set("attempt", id.attempt)
                e.set("from", n > 1 ? from?.rawValue : nil)
                var text = e.text
                if let members = line.objectMembers {
                    let extra = members.filter { $0.key != "time" }.map { JSONText.quote($0.key) + ":" + $0.value.jsonText }
                    if !extra.isEmpty { text = text.dropLast() + "," + extra.joined(separator: ",") + "}" }
                }
                pendingEvents.append(text)
                log.noteLogged(id, n: n)
                live[id]?.state = s
                if s == .starting, let pid = line["shim_pid"]?.intValue {
                    live[id]?.shimPID = pid_t(pid)
                    live[id]?.shimStart = line["shim_start"]?.stringValue
                }
            }
            if live[id]?.state.isFinal == true { live[id] = nil }
        }
    }

    private func flushEvents(durable: Bool = true) {
        guard !pendingEvents.isEmpty else { return }
        do {
            try log.append(pendingEvents, durable: durable)
            pendingEvents.removeAll()
        } catch {
            AgentLog.write("cannot append to the event log: \(error); will retry")
        }
    }

    private func emit(_ fields: [String: String], extra: [String: Int] = [:]) {
        var e = JSONObject()
        for k in fields.keys.sorted() { e.set(k, fields[k]) }
        for k in extra.keys.sorted() { e.set(k, extra[k]) }
        pendingEvents.append(e.text)
    }

    // MARK: - Shims

    /// Every 250 ms: a shim that is gone (pid dead, or reused by another process) without a
    /// final state means the attempt is `lost`.
    private func checkShims() {
        let now = monotonicTime()
        for (id, a) in live where now - a.lastCheck >= 0.25 {
            live[id]?.lastCheck = now
            guard let pid = a.shimPID else { continue }

            let alive = kill(pid, 0) == 0 || errno == EPERM
            let same = alive && (live[id]?.shimStart == nil || table.startTime(of: pid) == live[id]?.shimStart)
            if same && !isZombie(pid) { continue }
            reapChildren()
            pollTransitions(only: id)
            guard live[id] != nil else { continue }  // it finished just now
            markLost(id, why: "its shim (pid \(pid)) is gone without a result")
        }
    }

    private func isZombie(_ pid: pid_t) -> Bool {
        #if os(Linux)
        guard let b = try? LocalFile.read("/proc/\(pid)/stat"), let close = b.lastIndex(of: UInt8(ascii: ")")), close + 2 < b.count else { return false }
        return b[close + 2] == UInt8(ascii: "Z")
        #else
        return false
        #endif
    }

    /// Marks an attempt lost and kills whatever is left of it.
    private func markLost(_ id: AttemptID, why: String) {
        let pgid = AttemptProcesses(transitionsFile: dir.transitionsFile(id)).jobPID
        let cgroup = JobCgroup.existing(name: JobCgroup.name(for: dir, id))
        let killed = TreeKiller(table: table, cookie: dir.cookie(id), cgroup: cgroup).killAll(pgid: pgid, ancestor: nil)
        cgroup?.remove()
        var f = JSONObject()
        f.set("error", why)
        f.set("leftovers_killed", killed)
        f.set("ended_at", wallTime())
        do {
            try AttemptEnd.record(.lost, fields: f, dir: dir, id: id)
        } catch {
            AgentLog.write("cannot mark \(id) lost: \(error)")
        }
        AgentLog.write("\(id) lost: \(why); \(killed) leftover process(es) killed")
        live[id]?.transitionsSize = -1
        pollTransitions(only: id)
    }

    // MARK: - Lease

    /// Every 100 ms: each coordinator's lease covers only the attempts whose spec names that
    /// coordinator (the legacy `lease` file also those that name none).
    private func checkLease() {
        guard monotonicTime() - lastLeaseCheck >= 0.1 else { return }
        lastLeaseCheck = monotonicTime()
        for expired in lease.check(dir) {
            var orphaned = 0
            for (id, a) in live where !a.keepRunning && (a.coordinator == expired.coordinator || (expired.legacy && a.coordinator == nil)) {
                requestCancel(id, reason: "orphaned")
                orphaned += 1
            }
            emit(["type": "lease_expired", "coordinator": expired.coordinator], extra: ["epoch": expired.epoch, "orphaned": orphaned])
            AgentLog.write("lease of \(expired.coordinator) expired (\(JSONText.number(expired.ttl)) s without renewal); \(orphaned) attempt(s) cancelled as orphaned")
        }
        heartbeat.setCoordinators(lease.live)
    }

    /// Cancels everything and waits (bounded) for the shims to record the ends.
    private func cancelAll(reason: String, graceDeadline: Double) {
        for id in live.keys { requestCancel(id, reason: reason) }
        let end = monotonicTime() + graceDeadline
        while !live.isEmpty && monotonicTime() < end {
            pollTransitions()
            checkShims()
            reapChildren()
            flushEvents()
            sleepSeconds(0.02)
        }
    }
}

/// Flushes every file system buffer of the file system holding `path` (one `syncfs`).
func syncFilesystem(_ path: String) {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = drover_syncfs(fd)
    close(fd)
}

/// Names in a directory (not `.` or `..`); empty when it cannot be read.
func listDirectory(_ path: String) -> [String] {
    guard let d = opendir(path) else { return [] }
    defer { closedir(d) }
    var out: [String] = []
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { out.append(name) }
    }
    return out
}
