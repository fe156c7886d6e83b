import DroverCore
import DroverInventory
import DroverProtocol
import Foundation

/// What the loop has to look at next: each flag is set by whatever may have made work of its
/// kind, and cleared by the loop when it looks. Owned by `Coordinator+Loop`.
struct LoopAgenda {
    /// The most often the loop's housekeeping runs, seconds.
    static let housekeepingInterval = 0.02
    /// The queue may have work (a slot freed, a job queued, a host came up): schedule.
    var schedule = true
    /// A job ended: waiting dependents may be released or skipped.
    var dependents = true
    /// This process wrote cancel requests (its own writes do not change the data version).
    var requests = false
    /// A job ended: a batch may be over.
    var batches = true
    /// A saga may move on (a compensation ended, `drover compensate` asked, a batch failed).
    var sagas = true
    /// A host's link or heartbeats changed what its state may be.
    var hosts = true
    /// The earliest end of a retry back-off (Unix seconds), when one is pending.
    var retryAt: Double?

    /// Housekeeping has work (it runs at most every `housekeepingInterval`).
    var housekeepingPending: Bool { dependents || batches || hosts || sagas }
    /// The loop must go round again without sleeping.
    var runsAtOnce: Bool { schedule || requests }

    /// A retry's back-off ends at `time`.
    mutating func retry(at time: Double) { retryAt = min(retryAt ?? time, time) }
}

extension Coordinator {
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
                roster.lastSeq[host.name] = try journal.registerHost(host.name, at: wallNow)
                roster.hostState[host.name] = "connecting"
                roster.liveness[host.name] = HostLiveness(deadAfter: settings.deadAfter, since: now)
            }
        }
        agenda.retryAt = try? nextWake()
        try loadBreakers()
        log("coordinator \(cid) epoch \(epoch) started with \(inventory.hosts.count) host(s)")
        for host in inventory.hosts {
            let link = HostLink(spec: host, deployer: deployer, lease: .init(coordinator: cid, epoch: epoch, ttl: settings.leaseTTL,
                                                                                     beat: HeartbeatCadence.interval(deadAfter: settings.deadAfter)), delegate: self, log: log)
            roster.links[host.name] = link
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
                try resyncBreakersAfterRollback()
                let v = try journal.db.dataVersion()
                if v != version || agenda.requests {
                    agenda.requests = false
                    try handleRequests()
                    version = v
                }
                // Housekeeping (dependents, hosts, gates, finished batches, idle exit) runs at most
                // every `housekeepingInterval`: under a stream of events it would otherwise run,
                // and scan the journal, once per applied batch of events.
                if now >= nextHousekeeping {
                    nextHousekeeping = now + LoopAgenda.housekeepingInterval
                    if agenda.dependents {
                        agenda.dependents = false
                        approvals.due = nil  // a released job may be a new gate with its own timeout
                        do { try releaseWaiting() } catch {
                            agenda.dependents = true
                            throw error
                        }
                    }
                    if let w = agenda.retryAt, wallNow >= w {
                        agenda.retryAt = try nextWake()
                        agenda.schedule = true
                    }
                    agenda.hosts = false
                    checkForSleep()
                    try checkHosts()
                    try openHalfway()
                    try judgeUndecided()
                    if approvals.isDue(at: wallNow) { approvals.due = try checkApprovals() }
                    if agenda.batches {
                        agenda.batches = false
                        try checkFinishedBatches()
                    }
                    if notifications.isDue(at: wallNow) { notifications.due = try deliverNotifications() }
                    if agenda.sagas {
                        agenda.sagas = false
                        do { try advanceSagas() } catch {
                            agenda.sagas = true
                            throw error
                        }
                    }
                    if let idle = settings.idleExit {
                        // Unfinished jobs, and notifications not yet delivered, keep it running.
                        if try journal.hasOpenJobs() || !notifications.isIdle { idleSince = now }
                        if now - idleSince >= idle {
                            log("no unfinished job for \(Int(idle)) s; exiting")
                            break
                        }
                        sleep = min(sleep, idleSince + idle - now)
                    }
                }
                if let b = beats.flushAt, now >= b { flushBeats() }
                if agenda.schedule {
                    do { try schedule() } catch {
                        agenda.schedule = true
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
            if let t = roster.nextLivenessChange(after: now) { sleep = min(sleep, t - now) }
            if let w = agenda.retryAt { sleep = min(sleep, w - wallNow) }
            if let d = roster.downRecheck.values.map(\.at).min() { sleep = min(sleep, max(d - now, nextHousekeeping - now)) }
            if let b = breakerDue { sleep = min(sleep, b - wallNow) }
            if let u = breakers.undecided.values.min() { sleep = min(sleep, max(u - wallNow, nextHousekeeping - now)) }
            if let a = approvals.due { sleep = min(sleep, a - wallNow) }
            if let b = beats.flushAt { sleep = min(sleep, b - now) }
            if let n = notifications.due { sleep = min(sleep, max(n - wallNow, nextHousekeeping - now)) }
            if agenda.housekeepingPending { sleep = min(sleep, nextHousekeeping - now) }
            if agenda.runsAtOnce { sleep = 0 }
            checkForSleep()
            sleepDetector?.willWait(until: now + max(sleep, 0))
            await doorbell.wait(seconds: max(sleep, 0) + (sleep > 0 ? 0.002 : 0))
        }
        flushBeats()
        try? journal.audit("coordinator", "coordinator stopped (pid \(getpid()))")
        for link in roster.links.values { await link.stop() }
    }
}
