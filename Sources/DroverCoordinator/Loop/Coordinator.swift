import DroverCore
import DroverProtocol
import DroverInventory
import DroverSSH
import Foundation
import Logging

/// Settings of the coordinator loop (`drover coordinator --help` documents each).
public struct CoordinatorSettings: Sendable {
    /// Seconds without a heartbeat before a host is `down` and its jobs are re-run elsewhere.
    public var deadAfter: Double = 10
    /// Seconds an agent keeps its jobs without hearing from this coordinator (a job's own
    /// `lease` overrides it for that job): hours, so a coordinator that sleeps loses nothing.
    public var leaseTTL: Double = CoordinatorSettings.defaultLease
    /// The default lease: 6 hours (HTCondor's job lease, 40 minutes, is the floor).
    public static let defaultLease: Double = 6 * 3600
    /// The shortest lease a job may ask for (the coordinator renews at most every 10 s).
    public static let minimumJobLease: Double = 30
    public var stalePolicy: StalePolicy = .killStale
    /// Exit after this many seconds with no unfinished job (nil: run until stopped).
    public var idleExit: Double?
    /// The longest the loop sleeps without a ring or a deadline: a safety net only, since
    /// commits, events and links ring it (seconds).
    public var safetyWake: Double = 5
    /// When a host is quarantined as a black hole (nil: never); the inventory's
    /// `defaults.quarantine` unless the command line says otherwise.
    public var quarantine: QuarantineSettings? = QuarantineSettings()
    /// The settings with where each came from (JSON), recorded in the journal's meta
    /// `settings` when the loop starts, for `drover config`.
    public var record: String?

    public init() {}
}

/// The coordinator: one loop per state directory that places queued jobs on hosts, applies
/// every agent event to the journal exactly once, watches heartbeats, re-runs the jobs of
/// dead hosts, and reconciles with hosts that come back.
///
/// Every decision is committed to the journal before the command that acts on it is sent.
public actor Coordinator: HostLinkDelegate {
    let journal: Journal
    let inventory: Inventory
    let settings: CoordinatorSettings
    let deployer: Deployer
    let cid: String
    var epoch = 0
    var links: [String: HostLink] = [:]
    var liveness: [String: HostLiveness] = [:]
    var hostState: [String: String] = [:]
    var lastSeq: [String: Int] = [:]
    var cpus: [String: Int] = [:]
    var caughtUp: Set<String> = []
    /// Hosts whose key is not trusted (changed, unknown or revoked), with why; nothing is sent
    /// to them and their state stays `untrusted` until a connection succeeds.
    var untrusted: [String: String] = [:]
    var cancelSent: Set<String> = []
    /// Machine ids from the agents' heartbeats.
    var machineIDs: [String: String] = [:]
    /// What makes a host one running system (`HostProbe.systemKey`), from the heartbeats.
    var systemKeys: [String: String] = [:]
    /// Hosts that are the same machine as an earlier inventory host (host → that host).
    var sameMachineAs: [String: String] = [:]
    var dirty = true
    /// A job ended: waiting dependents may be released or skipped.
    var dependentsDirty = true
    /// This process wrote cancel requests (its own writes do not change the data version).
    var requestsPending = false
    /// The earliest end of a retry back-off (Unix seconds), when one is pending.
    var wakeAt: Double?
    /// Hosts that stay `down`: when their link is next restarted (monotonic) and the wait after that.
    var downRecheck: [String: (at: Double, wait: Double)] = [:]
    /// Attempts whose results are being fetched ("job/attempt").
    var collecting: Set<String> = []
    /// The host and final-event sequence of each attempt in `collecting` (0: not known).
    var collectingSeq: [String: (host: String, seq: Int)] = [:]
    /// The sequence of the agent event being applied (0 outside `receive`).
    var applyingSeq = 0
    /// Collections decided in the current transaction, handed to the links after it commits.
    var pendingCollections: [(String, HostLink.Collection)] = []
    /// Snapshots to pull, decided in the current transaction; jobs with pulls under way (and the host).
    var pendingPulls: [(String, CheckpointPull)] = []
    var pullingCheckpoints: [Int: (host: String, count: Int)] = [:]
    /// A snapshot was replaced or its job succeeded: the store has files to remove.
    var storePruneDue = true
    /// Hashes of local files staged as inputs, by path (reused while size and mtime are the same).
    var hashCache: [String: HashedFile] = [:]
    var stopRequested = false
    /// Rung by whatever has work for the loop; it sleeps until then or its next deadline.
    let doorbell = Doorbell()
    /// When the loop must look at approval gates again (their timeouts), Unix seconds.
    var approvalsDue: Double?
    /// A job ended: a batch may be over.
    var batchesDirty = true
    /// When the notification outbox must be looked at again (Unix seconds; nil: nothing pending).
    var notifyDue: Double? = 0
    /// Notifications being delivered now (by their row id).
    var delivering: Set<Int> = []
    /// A saga may move on (a compensation ended, `drover compensate` asked, a batch failed).
    var sagasDirty = true
    /// A host's link or heartbeats changed what its state may be.
    var hostsDirty = true
    /// Each host's circuit breaker, as in the journal (`Coordinator+Quarantine`).
    var breakers: [String: QuarantineRecord] = [:]
    var breakersLoaded = false
    /// Each host's facts as its agent last reported them (`Coordinator+Facts`); nil until read from the journal.
    var facts: [String: HostFactsReport]?
    /// Hosts with the evidence for a quarantine whose verdict waits for the other hosts' attempts.
    var undecidedBreakers: [String: Double] = [:]
    /// Half-open hosts whose end of cool-down was said already.
    var announcedHalfOpen: Set<String> = []
    /// When each host's heartbeat was last written to the journal, and what it said.
    var heartbeatRecorded: [String: (at: Double, key: String)] = [:]
    /// Routine beats not written yet (the newest of each host), and when they will be.
    var pendingBeats: [String: Journal.Beat] = [:]
    var beatsFlushAt: Double?
    /// The journal records the routine heartbeats of `up` hosts this often, all in one
    /// transaction (seconds): `drover hosts` shows their age.
    static let heartbeatRecordInterval = 5.0
    /// The most often the loop's housekeeping runs, seconds.
    static let housekeepingInterval = 0.02
    let started = ContinuousClock.now
    /// Notices when the coordinator itself did not run (its machine slept, SIGSTOP).
    var sleepDetector: SleepDetector?
    /// The coordinator's log (swift-log; `CoordinatorLogHandler` writes `coordinator.log`).
    let logger: Logger
    /// One line in the log; "warning: …" lines at warning level.
    let log: @Sendable (String) -> Void

    /// Opens the journal in `state`; the caller holds the coordinator lock.
    public init(state: StateLocation, inventory: Inventory, catalog: AgentCatalog, settings: CoordinatorSettings,
                logger: Logger = Logger(label: "drover.coordinator")) throws {
        journal = try Journal(state, ringsCoordinator: false)
        cid = try journal.coordinatorID()
        self.inventory = inventory
        self.settings = settings
        self.deployer = Deployer(catalog: catalog)
        self.logger = logger
        log = { message in
            if message.hasPrefix("warning: ") {
                logger.warning("\(message.dropFirst(9))")
            } else {
                logger.info("\(message)")
            }
        }
    }

    var now: Double {
        let d = ContinuousClock.now - started
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    var wallNow: Double { Date().timeIntervalSince1970 }

    /// Asks the loop to stop (from a signal handler task).
    public func stop() {
        stopRequested = true
        doorbell.ring()
    }

    /// Something the loop acts on was recorded (results collected, a staging failure).
    nonisolated func workArrived() { doorbell.ring() }

    /// Runs until stopped (or idle for `idleExit`).
    public func run() async throws {
        try journal.db.transaction {
            epoch = (Int(try journal.meta("epoch") ?? "0") ?? 0) + 1
            try journal.setMeta("epoch", String(epoch))
            try journal.setMeta("pid", String(getpid()))
            try journal.setMeta("inventory", "\(inventory.source)")
            try journal.setMeta("settings", settings.record ?? "")
            try journal.audit("coordinator", "coordinator started (pid \(getpid()), epoch \(epoch), \(inventory.hosts.count) host(s))")
            for host in inventory.hosts {
                lastSeq[host.name] = try journal.registerHost(host.name, at: wallNow)
                hostState[host.name] = "connecting"
                liveness[host.name] = HostLiveness(deadAfter: settings.deadAfter, since: now)
            }
        }
        wakeAt = try? nextWake()
        try loadBreakers()
        log("coordinator \(cid) epoch \(epoch) started with \(inventory.hosts.count) host(s)")
        for host in inventory.hosts {
            let link = HostLink(spec: host, deployer: deployer, lease: .init(coordinator: cid, epoch: epoch, ttl: settings.leaseTTL), delegate: self, log: log)
            links[host.name] = link
            link.start()
        }
        sleepDetector = SleepDetector(threshold: SleepDetector.threshold(deadAfter: settings.deadAfter), monotonic: now, wall: wallNow)
        var version: Int64 = -1
        var idleSince = now
        var nextHousekeeping = now
        // Commits of commands (submit, cancel, approve) ring the loop through the doorbell
        // file they touch; the loop's own commits do not.
        let watch = try? JournalWatch(journal.state, doorbellOnly: true)
        let relay = Task { [doorbell] in
            guard let watch else { return }
            for await _ in watch.changes { doorbell.ring() }
        }
        defer {
            watch?.stop()
            relay.cancel()
        }
        while !stopRequested && !Task.isCancelled {
            var sleep = settings.safetyWake
            checkForSleep()
            do {
                let v = try journal.db.dataVersion()
                if v != version || requestsPending {
                    requestsPending = false
                    try handleRequests()
                    version = v
                }
                // Housekeeping (dependents, hosts, gates, finished batches, idle exit) runs at most
                // every `housekeepingInterval`: under a stream of events it would otherwise run,
                // and scan the journal, once per applied batch of events.
                if now >= nextHousekeeping {
                    nextHousekeeping = now + Self.housekeepingInterval
                    if dependentsDirty {
                        dependentsDirty = false
                        approvalsDue = nil  // a released job may be a new gate with its own timeout
                        do { try releaseWaiting() } catch {
                            dependentsDirty = true
                            throw error
                        }
                    }
                    if let w = wakeAt, wallNow >= w {
                        wakeAt = try nextWake()
                        dirty = true
                    }
                    hostsDirty = false
                    checkForSleep()
                    try checkHosts()
                    try openHalfway()
                    try judgeUndecided()
                    if approvalsDue.map({ wallNow >= $0 }) ?? true { approvalsDue = try checkApprovals() }
                    if batchesDirty {
                        batchesDirty = false
                        try checkFinishedBatches()
                    }
                    if notifyDue.map({ wallNow >= $0 }) ?? false { notifyDue = try deliverNotifications() }
                    if sagasDirty {
                        sagasDirty = false
                        do { try advanceSagas() } catch {
                            sagasDirty = true
                            throw error
                        }
                    }
                    if let idle = settings.idleExit {
                        // Unfinished jobs, and notifications not yet delivered, keep it running.
                        if try journal.hasOpenJobs() || notifyDue != nil || !delivering.isEmpty { idleSince = now }
                        if now - idleSince >= idle {
                            log("no unfinished job for \(Int(idle)) s; exiting")
                            break
                        }
                        sleep = min(sleep, idleSince + idle - now)
                    }
                }
                if let b = beatsFlushAt, now >= b { flushBeats() }
                if dirty {
                    do { try schedule() } catch {
                        dirty = true
                        throw error
                    }
                }
            } catch {
                // A failed write (full disk, …) changes nothing: the transaction rolled back and
                // the same decision is retried a second later.
                log("journal: \(error)")
                sleep = 1
            }
            // The next deadline: a host's heartbeat age, a retry's back-off, an approval's timeout.
            for l in liveness.values { if let t = l.nextChange(after: now) { sleep = min(sleep, t - now) } }
            if let w = wakeAt { sleep = min(sleep, w - wallNow) }
            if let d = downRecheck.values.map(\.at).min() { sleep = min(sleep, max(d - now, nextHousekeeping - now)) }
            if let b = breakerDue { sleep = min(sleep, b - wallNow) }
            if let u = undecidedBreakers.values.min() { sleep = min(sleep, max(u - wallNow, nextHousekeeping - now)) }
            if let a = approvalsDue { sleep = min(sleep, a - wallNow) }
            if let b = beatsFlushAt { sleep = min(sleep, b - now) }
            if let n = notifyDue { sleep = min(sleep, max(n - wallNow, nextHousekeeping - now)) }
            if dependentsDirty || batchesDirty || hostsDirty || sagasDirty { sleep = min(sleep, nextHousekeeping - now) }
            if dirty || requestsPending { sleep = 0 }
            checkForSleep()
            sleepDetector?.willWait(until: now + max(sleep, 0))
            await doorbell.wait(seconds: max(sleep, 0) + (sleep > 0 ? 0.002 : 0))
        }
        flushBeats()
        try? journal.audit("coordinator", "coordinator stopped (pid \(getpid()))")
        for link in links.values { await link.stop() }
    }

    // MARK: Requests from commands

    /// Cancels requested by `drover cancel`; new jobs make the queue dirty (and may be released
    /// from their dependencies, or be approvals done by `drover approve`).
    func handleRequests() throws {
        dirty = true
        dependentsDirty = true
        facts = nil  // `drover hosts --facts` may have collected newer ones
        sagasDirty = true
        try loadBreakers()
        let ids = try journal.jobsToCancel()
        var outbox: [String: [String]] = [:]
        var sent: Set<String> = []
        try journal.db.transaction {
            for id in ids {
                guard let job = try journal.job(id) else { continue }
                if job.state == .queued || job.state == .waiting || job.state == .approval {
                    try finish(job, .cancelled, reason: cancelReason(job, otherwise: "cancelled before it started"))
                    continue
                }
                guard let host = job.host else { continue }
                if hostState[host] == "down" || hostState[host] == "untrusted" {
                    try finish(job, .cancelled, reason: "cancelled while \(host) is down: its attempt is killed when the host comes back (or by its agent when the lease expires)")
                    continue
                }
                let key = "\(id)/\(job.attempt)"
                if !cancelSent.contains(key) {
                    sent.insert(key)
                    outbox[host, default: []].append(cancelCommand(job: id, attempt: job.attempt, reason: .cancelled))
                    try journal.audit("cancel_sent", job: id, attempt: job.attempt, host: host, "cancel sent to \(host)")
                }
            }
        }
        cancelSent.formUnion(sent)
        flush(outbox)
    }

    // MARK: Hosts

    /// Updates every host's state from its heartbeats; a host that goes `down` loses its attempts.
    func checkHosts() throws {
        for host in inventory.hosts {
            let name = host.name
            guard let live = liveness[name], untrusted[name] == nil else { continue }
            let beat = live.state(at: now)
            let old = hostState[name] ?? "connecting"
            var new: String
            switch beat {
            case .down: new = "down"
            case .connecting: new = old == "down" || old == "untrusted" ? "down" : "connecting"
            case .up, .suspect:
                if !caughtUp.contains(name) {
                    new = old == "down" || old == "untrusted" || old == "reconciling" ? "reconciling" : (old == "up" || old == "suspect" ? old : "connecting")
                } else if old != "up" && old != "suspect", try journal.staleLiveCount(on: name) > 0 {
                    // Only a host coming back (reconnected, caught up) waits for its stale attempts
                    // to end; one that stays up keeps its state (and costs no query per round).
                    new = "reconciling"
                } else {
                    new = beat == .up ? "up" : "suspect"
                }
            }
            if new == old {
                if new == "down" { recheckDown(name) }
                continue
            }
            try journal.db.transaction {
                try journal.setHostState(name, new, since: wallNow)
                try journal.audit("host", host: name, state: new, "\(name): \(old) → \(new)\(new == "down" ? " (no heartbeat for \(Int(settings.deadAfter)) s)" : "")")
                if new == "down" && old != "untrusted" { try loseAttempts(on: name) }
                if new == "down" { try notify(.hostDown, host: name, message: "\(name): \(old) → down (no heartbeat for \(Int(settings.deadAfter)) s)") }
            }
            hostState[name] = new
            log("\(name): \(old) → \(new)")
            if new == "up" { dirty = true }
            // Silence: reconnect, which also restarts an agent that died (its shims keep the
            // jobs, and the new agent re-adopts them before the host is declared down).
            if new == "suspect" { links[name]?.restart() }
            if new == "down" {
                caughtUp.remove(name)
                links[name]?.restart()
                downRecheck[name] = (now + settings.deadAfter, settings.deadAfter)
            } else {
                downRecheck[name] = nil
            }
        }
    }

    /// A host that stays `down` while its link is connected (its agent died and could not be
    /// started again: its lock held, its disk full) would never be looked at again: its link is
    /// restarted, which checks the agent and starts it, after `--dead-after`, then twice as
    /// long each time, at most every 60 s.
    func recheckDown(_ name: String) {
        guard let r = downRecheck[name], now >= r.at else { return }
        links[name]?.restart()
        let wait = min(r.wait * 2, 60)
        downRecheck[name] = (now + wait, wait)
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
            collecting.remove("\(id)/\(job.attempt)")
            try requeue(job, reason: "\(why) before the results of attempt \(job.attempt) were fetched", lost: true)
        }
    }

    // MARK: Link callbacks

    func lastAppliedSeq(_ host: String) -> Int { lastSeq[host] ?? 0 }

    /// The applied sequence, held below the final event of any attempt on `host` whose results
    /// are still being fetched (0 while one whose event is not known is: after a restart).
    func collectedSeq(_ host: String) -> Int {
        collectingSeq = collectingSeq.filter { collecting.contains($0.key) }
        var mark = lastSeq[host] ?? 0
        for (_, c) in collectingSeq where c.host == host { mark = min(mark, max(0, c.seq - 1)) }
        return mark
    }

    func linkUp(_ host: String, deploy: DeployReport) {
        if let was = untrusted.removeValue(forKey: host) {
            log("\(host): its host key is trusted again (was: \(was.prefix(80))…)")
            try? journal.audit("host", host: host, "\(host): host key trusted again; connected")
        }
        log("\(host): connected; agent \(deploy.outcome.rawValue) (build \(deploy.build ?? "?"), pid \(deploy.agentPID.map(String.init) ?? "?"))")
        try? journal.setConnected(host, agentBuild: deploy.build)
        if deploy.outcome != .upToDate {
            try? journal.audit("host", host: host, "agent \(deploy.outcome.rawValue) on \(host) (build \(deploy.build ?? "?"))")
        }
        hostsDirty = true
        doorbell.ring()
    }

    func linkDown(_ host: String, error: String) {
        caughtUp.remove(host)
        log("\(host): link down: \(error)")
        try? journal.setHostError(host, error)
        hostsDirty = true
        doorbell.ring()
    }

    /// The host offered a key known_hosts does not trust: it becomes `untrusted` (recorded with
    /// the message, which names the host, its address, both fingerprints and the
    /// `ssh-keygen -R` to run), its attempts are lost and re-run elsewhere, and nothing is sent
    /// to it. Repeated refusals with the same message are recorded once.
    func linkUntrusted(_ host: String, error: SSHError) {
        caughtUp.remove(host)
        let message = error.description
        guard untrusted[host] != message else { return }
        untrusted[host] = message
        let old = hostState[host] ?? "connecting"
        let oneLine = message.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        do {
            try journal.db.transaction {
                try journal.setHostState(host, "untrusted", since: wallNow, error: message)
                try journal.audit("host", host: host, state: "untrusted",
                                  "\(host): \(old) → untrusted: refusing to connect, no job goes there until its key is trusted again: \(oneLine)")
                if old != "down" && old != "untrusted" { try loseAttempts(on: host) }
            }
        } catch {
            log("\(host): could not record the untrusted host key: \(error)")
        }
        hostState[host] = "untrusted"
        dirty = true
        doorbell.ring()
        log("\(host): \(old) → untrusted: \(message)")
    }

    // MARK: Journal helpers

    /// Ends a job for good (never twice: a final job is never changed again).
    func finish(_ job: JobRecord, _ state: JobState, reason: String, exitCode: Int? = nil, signal: String? = nil) throws {
        guard try journal.finishJob(job.id, state, reason: reason, exitCode: exitCode, signal: signal, at: wallNow) else { return }
        batchesDirty = true
        if job.compensates != nil { sagasDirty = true }
        if state == .succeeded && job.request.checkpoint != nil { storePruneDue = true }
        try journal.audit("job", job: job.id, attempt: job.attempt, host: job.host, state: state.rawValue, "job \(job.label) \(state.rawValue): \(reason)")
        if state == .failed { try notifyFailed(job, reason: reason, exitCode: exitCode, signal: signal) }
        guard let batch = job.batch else { return }
        dependentsDirty = true
        if state == .failed, try journal.batch(named: batch)?.failFast == true {
            try failFast(batch, failed: job)
        }
    }

    /// Why a job asked to stop ends cancelled: the reason recorded with the request (fail-fast
    /// records one in the job's reason), else `otherwise`.
    func cancelReason(_ job: JobRecord, otherwise: String) -> String {
        if let r = job.reason, r.hasPrefix("fail-fast") { return r }
        return otherwise
    }

    /// Puts a job back in the queue (after its back-off, for a failure), or fails it when its
    /// budget is spent or its retry policy does not retry this kind of failure.
    func requeue(_ job: JobRecord, reason: String, lost: Bool, failure: FailureKind? = nil) throws {
        let used = (lost ? job.losses : job.failures) + 1
        let policy = job.request.retryPolicy
        let budget = lost ? job.request.lostRetries : policy.maxAttempts - 1
        try journal.setRetriesUsed(job.id, used, lost: lost)
        if !lost, let failure, !policy.retries(failure) {
            let on = policy.on.map(\.description).joined(separator: ", ")
            try finish(job, .failed, reason: "\(reason) (not retried: retry.on is [\(on)])", exitCode: job.exitCode, signal: job.signal)
            return
        }
        if used > budget {
            let what = lost ? "lost its host \(used) time(s) (--lost-retries \(budget))" : "failed \(used) time(s) (\(policy.maxAttempts) attempt(s) allowed)"
            try finish(job, .failed, reason: "\(reason); \(what)", exitCode: job.exitCode, signal: job.signal)
            return
        }
        let delay = lost ? 0 : policy.delay(retry: used, random: Double.random(in: 0..<1))
        let notBefore = delay > 0 ? wallNow + delay : nil
        try journal.requeue(job.id, notBefore: notBefore)
        let when = delay > 0 ? " in \(String(format: "%.1f", delay)) s" : ""
        try journal.audit("job", job: job.id, attempt: job.attempt, state: "queued",
                          "job \(job.label) queued again\(when): \(reason) (\(lost ? "host-loss" : "failure") retry \(used) of \(budget))")
        if let notBefore { wakeAt = min(wakeAt ?? notBefore, notBefore) }
        dirty = true
    }

    /// Hands queued commands to the host links (after the journal committed the decisions).
    func flush(_ outbox: [String: [String]]) {
        for (host, lines) in outbox { links[host]?.send(lines) }
    }
}
