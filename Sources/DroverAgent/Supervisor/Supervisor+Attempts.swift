import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Live attempts: their transitions into events, their shims' liveness, the leases.
extension Supervisor {
    // MARK: - Transitions → events

    /// Logs the new lines of the attempts' transitions files (every live attempt's, or one's).
    func pollTransitions(only: AttemptID? = nil) {
        for id in only.map({ [$0] }) ?? Array(live.keys) {
            // Before its transitions: the end's snapshot is logged before the end.
            if attemptByCheckpoints[dir.checkpointsDirectory(id)] != nil { pollCheckpoints(id) }
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
                if s.isFinal {
                    pendingFinals.append((pendingEvents.count - 1, id))
                    attemptEnded(id)
                    // Its shim (when this agent started it) is free for the next attempt.
                    if let pid = live[id]?.childPID { shimFinished(pid) }
                }
                log.noteLogged(id, n: n)
                live[id]?.state = s
                if s == .starting, let pid = line["shim_pid"]?.intValue {
                    live[id]?.shimPID = pid_t(pid)
                    live[id]?.shimStart = line["shim_start"]?.stringValue
                }
            }
            if live[id]?.state.isFinal == true { forget(id) }
        }
    }

    /// Logs the attempt's new snapshots (`checkpoints/K` folders its shim renamed into place).
    func pollCheckpoints(_ id: AttemptID) {
        let folder = dir.checkpointsDirectory(id)
        let logged = log.loggedCheckpoints[id] ?? 0
        for k in listDirectory(folder).compactMap(Int.init).filter({ $0 > logged }).sorted() {
            guard let node = readJSON(folder + "/\(k)/manifest.json"), let c = CheckpointEvent(node) else {
                AgentLog.write("\(id): checkpoint \(k) has no readable manifest; not reported")
                continue
            }
            emit(.checkpoint(c))
            log.noteCheckpoint(id, index: k)
        }
    }

    func flushEvents(durable: Bool = true) {
        guard !pendingEvents.isEmpty else { return }
        let base = log.nextSeq
        do {
            try log.append(pendingEvents, durable: durable)
            for (index, id) in pendingFinals { log.noteFinal(id, seq: base + index) }
            pendingFinals.removeAll()
            pendingEvents.removeAll()
        } catch {
            // Whole lines a full disk let through are in the log (and maybe applied already).
            let kept = min(log.lastAppendKept, pendingEvents.count)
            if kept > 0 {
                for (index, id) in pendingFinals where index < kept { log.noteFinal(id, seq: base + index) }
                pendingFinals = pendingFinals.filter { $0.0 >= kept }.map { ($0.0 - kept, $0.1) }
                pendingEvents.removeFirst(kept)
            }
            AgentLog.write("cannot append to the event log: \(error); will retry\(kept > 0 ? " (\(kept) event(s) of the batch got in whole and stay)" : "")")
        }
    }

    /// Queues an event for the log (written with the next commit).
    func emit(_ event: AgentEvent) {
        pendingEvents.append(event.json)
    }

    // MARK: - Watching attempts

    /// Watches the attempt's transitions file (shims append to it); where it cannot be
    /// watched, it is re-read every 250 ms instead.
    func follow(_ id: AttemptID) {
        let snapshots = dir.checkpointsDirectory(id)
        if LocalFile.exists(snapshots), watch.watch(snapshots) { attemptByCheckpoints[snapshots] = id }
        let path = dir.transitionsFile(id)
        if watch.watch(path) {
            attemptByTransitions[path] = id
            unwatched.remove(id)
        } else {
            attemptByTransitions[path] = nil
            unwatched.insert(id)
        }
    }

    /// Stops watching an attempt that has ended.
    func forget(_ id: AttemptID) {
        let path = dir.transitionsFile(id)
        watch.unwatch(path)
        attemptByTransitions[path] = nil
        unwatched.remove(id)
        if attemptByCheckpoints.removeValue(forKey: dir.checkpointsDirectory(id)) != nil { watch.unwatch(dir.checkpointsDirectory(id)) }
        if let fd = live[id]?.exitHandle {
            watch.unwatch(descriptor: fd)
            attemptByHandle[fd] = nil
            close(fd)
        }
        live[id] = nil
    }

    /// After each tick: watches lost (a file replaced or removed) are set up again, and
    /// adopted shims (not this agent's children) get an exit handle.
    func followAttempts(now: Double) {
        if now >= nextUnwatchedPoll {
            nextUnwatchedPoll = now + 0.25
            for id in unwatched where live[id] != nil { follow(id) }
        }
        for (path, id) in attemptByTransitions where !watch.isWatching(path) {
            if live[id] == nil { attemptByTransitions[path] = nil } else { follow(id) }
        }
        for (id, a) in live {
            guard let pid = a.shimPID, pid != a.childPID, a.exitHandle == nil, !a.onTimer else { continue }
            // Each handle is a descriptor: past a few hundred, the timer does, so the agent
            // keeps descriptors for its files.
            if attemptByHandle.count >= Self.maxExitHandles {
                live[id]?.onTimer = true
                continue
            }
            switch ExitHandle.open(pid) {
            case .descriptor(let fd):
                live[id]?.exitHandle = fd
                attemptByHandle[fd] = id
                watch.watch(descriptor: fd)
                // The pid may have been reused before the handle was opened: its start time tells.
                checkShim(id)
            case .gone:
                shimGone(id, pid: pid)
            case .unavailable:
                live[id]?.onTimer = true
            }
        }
    }

    // MARK: - Shims

    /// At most this many adopted shims are watched through a descriptor each.
    static let maxExitHandles = 256

    /// A shim that is gone without a final state means the attempt is `lost`. Shims this agent
    /// started are its children (SIGCHLD, then their pids among the reaped); adopted ones have
    /// an exit handle that became readable, or (without one) are checked every second.
    func checkShims(childSignal: Bool, readable: Set<Int32>, now: Double) {
        if childSignal { reapChildren() }
        let reaped = ReapedChildren.take()
        // A shim that ended is never handed another attempt.
        for pid in reaped where shimPipes[pid] != nil { retireShim(pid) }
        if !reaped.isEmpty {
            for (id, a) in live {
                if let pid = a.childPID, reaped.contains(pid) { shimGone(id, pid: pid) }
            }
        }
        for fd in readable {
            guard let id = attemptByHandle.removeValue(forKey: fd) else { continue }
            watch.unwatch(descriptor: fd)
            close(fd)
            live[id]?.exitHandle = nil
            // Readable means the process has exited.
            if let pid = live[id]?.shimPID { shimGone(id, pid: pid) }
        }
        if now >= nextShimTimer, live.values.contains(where: \.onTimer) {
            nextShimTimer = now + 1
            for (id, a) in live where a.onTimer { checkShim(id) }
        }
    }

    /// Checks that the attempt's shim still runs (its pid alive, not a zombie, with the start
    /// time it recorded: pids get reused).
    func checkShim(_ id: AttemptID) {
        guard let pid = live[id]?.shimPID else { return }
        let alive = kill(pid, 0) == 0 || errno == EPERM
        let same = alive && (live[id]?.shimStart == nil || table.startTime(of: pid) == live[id]?.shimStart)
        if same && !isZombie(pid) { return }
        shimGone(id, pid: pid)
    }

    /// Shim `pid` of the attempt has ended: unless it recorded the end (or another shim took
    /// the attempt over), the attempt is lost.
    func shimGone(_ id: AttemptID, pid: pid_t) {
        pollTransitions(only: id)
        guard let a = live[id], a.shimPID == pid else { return }
        markLost(id, why: "its shim (pid \(pid)) is gone without a result")
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
    func markLost(_ id: AttemptID, why: String) {
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
            // A full disk: the attempt stays live with its shim gone. The shim timer checks it
            // again every second, and marks it lost once the write succeeds (else it would
            // never end, and its job never run again).
            AgentLog.write("cannot mark \(id) lost: \(error); trying again in a second")
            live[id]?.onTimer = true
        }
        AgentLog.write("\(id) lost: \(why); \(killed) leftover process(es) killed")
        live[id]?.transitionsSize = -1
        pollTransitions(only: id)
    }

    // MARK: - Lease

    /// Each coordinator's lease covers only the attempts whose spec names that coordinator
    /// (the legacy `lease` file also those that name none). An attempt is orphaned when its
    /// coordinator's lease file has not changed for the attempt's own `lease` (else the file's
    /// ttl); each expiry is an event and a line in agent.log. Called when `leases/` or the root
    /// changes, a lease file is written, and when the next lease would expire.
    func checkLease() {
        let now = monotonicTime()
        let expiredFiles = lease.check(dir)
        // Orphaned attempts by coordinator and the lease that ran out.
        var groups: [String: (lease: LeaseWatch.Lease, ttl: Double, orphaned: Int)] = [:]
        for (id, a) in live where !a.keepRunning && !a.orphaned {
            guard let held = lease.holder(of: a.coordinator) else { continue }
            let ttl = a.lease ?? held.lease.ttl
            guard now - held.lastChange > ttl else { continue }
            requestCancel(id, reason: "orphaned")
            live[id]?.orphaned = true
            groups["\(held.lease.coordinator) \(ttl)", default: (held.lease, ttl, 0)].orphaned += 1
        }
        for file in expiredFiles where groups["\(file.coordinator) \(file.ttl)"] == nil {
            groups["\(file.coordinator) \(file.ttl)"] = (file, file.ttl, 0)
        }
        for (_, g) in groups.sorted(by: { $0.key < $1.key }) {
            emit(.leaseExpired(coordinator: g.lease.coordinator, epoch: g.lease.epoch, orphaned: g.orphaned))
            AgentLog.write("lease of \(g.lease.coordinator) expired (\(JSONText.number(g.ttl)) s without renewal); \(g.orphaned) attempt(s) cancelled as orphaned")
        }
        // Renewals written in place (not by rename) are seen through the file itself.
        for file in lease.files { watch.watch(file) }
        // A renewal may carry a higher collected mark: over the cap, that frees something now.
        if rootUsage > rootCap { gcSoon() }
        heartbeat.setCoordinators(lease.live)
        // The coordinators say how often they want to hear (each from its --dead-after).
        heartbeat.setWanted(lease.wantedBeat)
    }

    /// When (monotonic) the next lease runs out: a lease file's own ttl, or a live attempt's
    /// own lease since its coordinator's last renewal.
    var nextLeaseDeadline: Double? {
        var t = lease.nextExpiry
        for a in live.values where !a.keepRunning && !a.orphaned {
            guard let held = lease.holder(of: a.coordinator) else { continue }
            let at = held.lastChange + (a.lease ?? held.lease.ttl)
            t = min(t ?? at, at)
        }
        return t
    }

    /// Cancels everything and waits (bounded) for the shims to record the ends.
    func cancelAll(reason: String, graceDeadline: Double) {
        for id in live.keys { requestCancel(id, reason: reason) }
        let end = monotonicTime() + graceDeadline
        while !live.isEmpty && monotonicTime() < end {
            let wake = watch.wait(timeout: max(0, min(0.25, end - monotonicTime())))
            signals?.drain()
            _ = signals?.take(SIGCHLD)
            pollTransitions()
            checkShims(childSignal: true, readable: wake.descriptors, now: monotonicTime())
            flushEvents()
            followAttempts(now: monotonicTime())
        }
    }
}
