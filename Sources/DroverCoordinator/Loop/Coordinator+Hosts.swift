import DroverCore
import DroverSSH
import Foundation

/// What the coordinator knows of each inventory host: its link, the liveness its heartbeats
/// show, its state as recorded in the journal, how far its events are applied, and which
/// running system it is. Owned by `Coordinator+Hosts`; the pure decisions live here.
struct HostRoster {
    /// One link per inventory host.
    var links: [String: HostLink] = [:]
    /// Each host's liveness from its heartbeats (on the coordinator's monotonic clock).
    var liveness: [String: HostLiveness] = [:]
    /// Each host's state as last recorded in the journal (`connecting`, `up`, `suspect`,
    /// `reconciling`, `down`, `untrusted`).
    var hostState: [String: String] = [:]
    /// The last agent event sequence applied (and committed) for each host.
    var lastSeq: [String: Int] = [:]
    /// CPUs each agent reports: the host's slots when the inventory gives none.
    var cpus: [String: Int] = [:]
    /// Hosts whose event backlog was applied since their link last connected.
    var caughtUp: Set<String> = []
    /// Hosts whose key is not trusted (changed, unknown or revoked), with why; nothing is sent
    /// to them and their state stays `untrusted` until a connection succeeds.
    var untrusted: [String: String] = [:]
    /// Machine ids from the agents' heartbeats.
    var machineIDs: [String: String] = [:]
    /// What makes a host one running system (`HostProbe.systemKey`), from the heartbeats.
    var systemKeys: [String: String] = [:]
    /// Hosts that are the same machine as an earlier inventory host (host → that host).
    var sameMachineAs: [String: String] = [:]
    /// Hosts that stay `down`: when their link is next restarted (monotonic) and the wait after that.
    var downRecheck: [String: (at: Double, wait: Double)] = [:]

    /// Whether a host that stays `down` is due for its link to be restarted at `now`; if so,
    /// the next time is set, after twice the last wait (at most 60 s).
    mutating func downRecheckDue(_ host: String, at now: Double) -> Bool {
        guard let r = downRecheck[host], now >= r.at else { return false }
        let wait = min(r.wait * 2, 60)
        downRecheck[host] = (now + wait, wait)
        return true
    }

    /// What a heartbeat changed that the loop acts on.
    struct BeatNews: Equatable {
        /// The agent reports another CPU count (the host's slots may change).
        var cpusChanged = false
        /// The host is another running system than before (`noteSameMachines`).
        var identityChanged = false
    }

    /// Feeds a heartbeat to the host's liveness and notes its CPUs and machine identity.
    mutating func observe(_ hb: JSONNode, host: String, at now: Double) -> BeatNews {
        var news = BeatNews()
        guard let seq = hb["seq"]?.intValue else { return news }
        if let c = hb["cpus"]?.intValue, cpus[host] != c {
            cpus[host] = c
            news.cpusChanged = true
        }
        liveness[host]?.observe(seq: seq, pid: hb["pid"]?.intValue, interval: hb["interval"]?.doubleValue, at: now)
        if let m = hb["machine_id"]?.stringValue, !m.isEmpty {
            machineIDs[host] = m
            let key = HostProbe.systemKey(machineID: m, bootID: hb["boot_id"]?.stringValue, hostname: hb["hostname"]?.stringValue)
            if systemKeys[host] != key {
                systemKeys[host] = key
                news.identityChanged = true
            }
        }
        return news
    }

    /// The host's link connected to its running agent: the heartbeat the connection read
    /// counts as one that came up the link (a new sequence, or a new agent process, is life),
    /// so that a host whose link reconnects is not declared down before the first beat comes
    /// up the new stream. A beat already seen counts for nothing, as on the link.
    mutating func observeConnect(_ deploy: DeployReport, host: String, at now: Double) {
        guard let seq = deploy.heartbeatSeq else { return }
        liveness[host]?.observe(seq: seq, pid: deploy.agentPID, interval: nil, at: now)
    }

    /// The state a host moves to, from its liveness (`beat`), its recorded state (`old`) and
    /// whether its backlog is applied; `hasStaleAttempts` is asked only for a host coming back.
    static func nextState(beat: HostLiveness.State, old: String, caughtUp: Bool, hasStaleAttempts: () throws -> Bool) rethrows -> String {
        switch beat {
        case .down: return "down"
        case .connecting: return old == "down" || old == "untrusted" ? "down" : "connecting"
        case .up, .suspect:
            if !caughtUp {
                return old == "down" || old == "untrusted" || old == "reconciling" ? "reconciling" : (old == "up" || old == "suspect" ? old : "connecting")
            }
            // Only a host coming back (reconnected, caught up) waits for its stale attempts to
            // end; one that stays up keeps its state (and costs no query per round).
            if old != "up" && old != "suspect", try hasStaleAttempts() { return "reconciling" }
            return beat == .up ? "up" : "suspect"
        }
    }

    /// For each host (in inventory order) that is the same running system as an earlier one,
    /// that earlier host.
    func sameMachines(in order: [String]) -> [String: String] {
        var first: [String: String] = [:]
        var found: [String: String] = [:]
        for name in order {
            guard let key = systemKeys[name] else { continue }
            if let earlier = first[key] { found[name] = earlier } else { first[key] = name }
        }
        return found
    }

    /// Whether jobs may go to `host`: it is up, and it is not the same machine as an earlier
    /// host that may still take them (its slots are that machine's, already offered once),
    /// unless that one is down or untrusted (the machine may still be reachable under this name).
    func takesJobs(_ host: String) -> Bool {
        guard hostState[host] == "up" else { return false }
        guard let twin = sameMachineAs[host] else { return true }
        return ["down", "untrusted"].contains(hostState[twin])
    }

    /// The next time a host's liveness changes if no heartbeat comes (monotonic seconds).
    func nextLivenessChange(after now: Double) -> Double? {
        liveness.values.compactMap { $0.nextChange(after: now) }.min()
    }

    /// The coordinator did not run for a while: every host not down (nor untrusted) gets its
    /// clock restarted with `grace` seconds more; returns those hosts, in `order`.
    mutating func excuse(_ order: [String], at now: Double, grace: Double) -> [String] {
        var excused: [String] = []
        for name in order where hostState[name] != "down" && untrusted[name] == nil {
            liveness[name]?.excuse(at: now, grace: grace)
            excused.append(name)
        }
        return excused
    }
}

extension Coordinator {
    /// Updates every host's state from its heartbeats; a host that goes `down` loses its attempts.
    func checkHosts() throws {
        for host in inventory.hosts {
            let name = host.name
            guard let live = roster.liveness[name], roster.untrusted[name] == nil else { continue }
            let old = roster.hostState[name] ?? "connecting"
            let new = try HostRoster.nextState(beat: live.state(at: now), old: old, caughtUp: roster.caughtUp.contains(name)) {
                try journal.staleLiveCount(on: name) > 0
            }
            if new == old {
                // A host that stays `down` while its link is connected (its agent died and
                // could not be started again: its lock held, its disk full) would never be
                // looked at again: its link is restarted, which checks the agent and starts
                // it, after `--dead-after`, then twice as long each time, at most every 60 s.
                if new == "down", roster.downRecheckDue(name, at: now) { roster.links[name]?.restart() }
                continue
            }
            try journal.db.transaction {
                try journal.setHostState(name, new, since: wallNow)
                try journal.audit("host", host: name, state: new, "\(name): \(old) → \(new)\(new == "down" ? " (no heartbeat for \(Int(settings.deadAfter)) s)" : "")")
                if new == "down" && old != "untrusted" { try loseAttempts(on: name) }
                if new == "down" { try notify(.hostDown, host: name, message: "\(name): \(old) → down (no heartbeat for \(Int(settings.deadAfter)) s)") }
            }
            roster.hostState[name] = new
            log("\(name): \(old) → \(new)")
            if new == "up" { agenda.schedule = true }
            // Silence: reconnect, which also restarts an agent that died (its shims keep the
            // jobs, and the new agent re-adopts them before the host is declared down).
            if new == "suspect" { roster.links[name]?.restart() }
            if new == "down" {
                roster.caughtUp.remove(name)
                roster.links[name]?.restart()
                roster.downRecheck[name] = (now + settings.deadAfter, settings.deadAfter)
            } else {
                roster.downRecheck[name] = nil
            }
        }
    }

    /// The host went down (or lost its state, `reason`): its running attempts are lost and their
    /// jobs go back to the queue at once.
    func loseAttempts(on host: String, reason: String? = nil) throws {
        let why = reason ?? "host \(host) down"
        for (id, n) in try journal.openAttempts(on: host) {
            guard let job = try journal.job(id) else { continue }
            try journal.markLost(id, attempt: n, reason: why)
            try journal.audit("attempt", job: id, attempt: n, host: host, state: "lost", "attempt \(n) lost with host \(host)")
            guard job.attempt == n, !job.state.isFinal else { continue }
            if job.cancelRequested {
                try finish(job, .cancelled, reason: "cancelled; host \(host) went down (its attempt is killed when it comes back)")
            } else {
                try requeue(job, reason: why, lost: true)
            }
        }
        // Attempts that ended but whose results were not fetched yet: they are lost with the host.
        for id in try journal.jobsPlaced(on: host) {
            guard let job = try journal.job(id) else { continue }
            results.end(job: id, attempt: job.attempt)
            try requeue(job, reason: "\(why) before the results of attempt \(job.attempt) were fetched", lost: true)
        }
    }

    // MARK: Link callbacks

    func lastAppliedSeq(_ host: String) -> Int { roster.lastSeq[host] ?? 0 }

    func linkUp(_ host: String, deploy: DeployReport) {
        if let was = roster.untrusted.removeValue(forKey: host) {
            log("\(host): its host key is trusted again (was: \(was.prefix(80))…)")
            try? journal.audit("host", host: host, "\(host): host key trusted again; connected")
        }
        log("\(host): connected; agent \(deploy.outcome.rawValue) (build \(deploy.build ?? "?"), pid \(deploy.agentPID.map(String.init) ?? "?"))")
        try? journal.setConnected(host, agentBuild: deploy.build)
        roster.observeConnect(deploy, host: host, at: now)
        if deploy.outcome != .upToDate {
            try? journal.audit("host", host: host, "agent \(deploy.outcome.rawValue) on \(host) (build \(deploy.build ?? "?"))")
        }
        agenda.hosts = true
        doorbell.ring()
    }

    func linkDown(_ host: String, error: String) {
        roster.caughtUp.remove(host)
        log("\(host): link down: \(error)")
        try? journal.setHostError(host, error)
        agenda.hosts = true
        doorbell.ring()
    }

    /// The host offered a key known_hosts does not trust: it becomes `untrusted` (recorded with
    /// the message, which names the host, its address, both fingerprints and the
    /// `ssh-keygen -R` to run), its attempts are lost and re-run elsewhere, and nothing is sent
    /// to it. Repeated refusals with the same message are recorded once.
    func linkUntrusted(_ host: String, error: SSHError) {
        roster.caughtUp.remove(host)
        let message = error.description
        guard roster.untrusted[host] != message else { return }
        let old = roster.hostState[host] ?? "connecting"
        let oneLine = message.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        do {
            try journal.db.transaction {
                try journal.setHostState(host, "untrusted", since: wallNow, error: message)
                try journal.audit("host", host: host, state: "untrusted",
                                  "\(host): \(old) → untrusted: refusing to connect, no job goes there until its key is trusted again: \(oneLine)")
                if old != "down" && old != "untrusted" { try loseAttempts(on: host) }
            }
            // Recorded: the link's next refusal with the same message changes nothing. Until
            // then each refusal tries again (a full journal disk rolled this one back).
            roster.untrusted[host] = message
        } catch {
            log("\(host): could not record the untrusted host key (tried again at the next refusal): \(error)")
        }
        // No job goes there either way: the link refuses to connect.
        roster.hostState[host] = "untrusted"
        agenda.schedule = true
        doorbell.ring()
        log("\(host): \(old) → untrusted: \(message)")
    }

    // MARK: Heartbeats and machine identity

    /// Feeds a heartbeat to the host's liveness (and notes its machine identity).
    func observe(_ heartbeat: JSONNode?, host: String) {
        guard let hb = heartbeat else { return }
        let news = roster.observe(hb, host: host, at: now)
        if news.cpusChanged { agenda.schedule = true }
        if news.identityChanged {
            do { try noteSameMachines() } catch { log("journal: \(error)") }
        }
    }

    /// Finds inventory hosts whose agents report the same machine id (and boot id and host
    /// name, so clones of one image that kept its machine id stay apart) — one machine under
    /// two names (two addresses, or an alias) — and says so once per pair: a `host` audit event
    /// naming both, `hosts.same_machine_as` and the coordinator log. The later host in the
    /// inventory gets no jobs while the earlier one is up (see `schedule`): placing jobs on
    /// both would give the machine twice its slots.
    func noteSameMachines() throws {
        let found = roster.sameMachines(in: inventory.hosts.map(\.name))
        let before = roster.sameMachineAs
        guard found != before else { return }
        try journal.db.transaction {
            for h in inventory.hosts where found[h.name] != before[h.name] {
                try journal.setSameMachine(h.name, as: found[h.name])
                if let earlier = found[h.name] {
                    let m = roster.machineIDs[h.name] ?? "?"
                    let text = "\(h.name) and \(earlier) are the same machine (machine id \(m.prefix(12))): jobs go to \(earlier) only, unless it is down; remove one of them from the inventory"
                    try journal.audit("host", host: h.name, state: "same_machine", text)
                    log("warning: " + text)
                } else if let was = before[h.name] {
                    try journal.audit("host", host: h.name, "\(h.name) is no longer the same machine as \(was)")
                }
            }
        }
        roster.sameMachineAs = found
        agenda.schedule = true
    }
}
