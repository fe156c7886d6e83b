import DroverCoordinator
import DroverCore
import Foundation

/// One soak run: a mixed job stream across the testbed while the seeded fault plan runs,
/// then heal everything, let every job finish, check the invariants, and clean up.
final class Soak {
    let options: SoakOptions
    let testbed: Testbed
    let scratch: ScratchDisk
    let journalDisk: JournalDisk
    /// The jump host of the hosts behind a bastion, when the testbed has one.
    let bastion: String?
    let state: String
    let inventoryPath: String
    let files: RunFiles
    let faultLog: String
    let coordinator: CoordinatorProcess
    let started = Date()
    var kinds: [Int: JobKind] = [:]
    var crashes: [String] = []
    var rng: SplitMix64
    /// Agent root of the hosts that do not use the scratch tmpfs (apart from other users' `~/.drover`).
    static let defaultRoot = "/home/dtest/.drover-soak"
    /// At most this many unfinished jobs at a time.
    static let openCap = 30
    /// How long the jobs have to finish after the fault phase.
    static let drainLimit = 120.0
    /// The breaker's settings for this run: the default threshold, a short cool-down so a
    /// black-hole host gets work again within the run.
    static let quarantineFailures = 4
    static let quarantineCooldown = 5.0
    /// The coordinator's `--lease-ttl`: short, so that a partition can outlast it within a run
    /// (the agent orphans the jobs), and still longer than a coordinator's sleep plus the
    /// lease's renewal interval (ttl/3), so that no sleep orphans anything.
    static let leaseTTL = 30
    /// The coordinator's stale policy (the default): what the side-effect count is judged by.
    static let stalePolicy = "kill-stale"

    init(_ options: SoakOptions) throws {
        self.options = options
        rng = SplitMix64(seed: options.seed)
        let hostsJSON = options.testbedDir + "/hosts.json"
        guard let node = try? JSONParser.parse(LocalFile.read(hostsJSON)), let hosts = node["hosts"]?.arrayValue else {
            throw SoakFailure("cannot read the testbed inventory \(hostsJSON); is the testbed up?")
        }
        let names = hosts.compactMap { $0["name"]?.stringValue }
        guard names.count >= 3 else { throw SoakFailure("the soak needs 3 testbed hosts, \(hostsJSON) has \(names.count)") }
        if let want = options.hosts, want != names.count {
            throw SoakFailure("--hosts \(want), but the testbed has \(names.count) hosts (\(hostsJSON)); soak/run starts the right one")
        }
        var bed = Testbed(script: options.testbedScript, directory: options.testbedDir, hosts: names)
        for h in hosts {
            guard let name = h["name"]?.stringValue else { continue }
            bed.addresses[name] = h["address"]?.stringValue
            bed.jumps[name] = h["jump"]?.stringValue
        }
        testbed = bed
        bastion = bed.jumps.values.sorted().first
        scratch = try ScratchDisk(testbed: testbed, host: names[1])
        var template = Array("/tmp/drover-soak-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SoakFailure("cannot create a folder in /tmp (errno \(errno))") }
        state = String(cString: made)
        journalDisk = JournalDisk(path: state)
        try journalDisk.mount()
        inventoryPath = state + "/soak-hosts.json"
        files = RunFiles(tag: "\(options.seed)-\(getpid())")
        faultLog = "/tmp/drover-soak-seed\(options.seed).faults.log"
        coordinator = CoordinatorProcess(drover: options.drover, state: state, inventory: inventoryPath,
                                         extra: ["--quarantine-failures", String(Self.quarantineFailures), "--quarantine-cooldown", "\(Int(Self.quarantineCooldown))s",
                                                 "--lease-ttl", String(Self.leaseTTL), "--stale-policy", Self.stalePolicy])
        try writeInventory(defaults: node["defaults"]?.jsonText ?? "{}", hosts: hosts)
    }

    /// The soak's inventory: the testbed's hosts with 6 slots each, its own agent roots (the
    /// scratch host's on the tmpfs), and a `disk` label that keeps some kinds off the scratch host.
    func writeInventory(defaults: String, hosts: [JSONNode]) throws {
        var list: [String] = []
        for h in hosts {
            guard let name = h["name"]?.stringValue else { continue }
            var o = JSONObject()
            o.set("name", name)
            o.set("address", h["address"]?.stringValue ?? name)
            if let jump = h["jump"]?.stringValue { o.set("jump", jump) }
            o.set("slots", 6)
            o.set("root", name == scratch.host ? scratch.path : Self.defaultRoot)
            o.set("labels", ["testbed": "yes", "disk": name == scratch.host ? "fills" : "steady"])
            list.append(o.text)
        }
        try AtomicFile.write(Array("{\"defaults\":\(defaults),\"hosts\":[\(list.joined(separator: ","))]}\n".utf8), to: inventoryPath)
    }

    func root(of host: String) -> String { host == scratch.host ? scratch.path : Self.defaultRoot }

    var elapsed: Double { Date().timeIntervalSince(started) }

    /// Runs the soak; returns the exit status (0: every invariant holds).
    func run() -> Int32 {
        say("soak: seed \(options.seed), \(options.minutes) min of faults, testbed \(testbed.directory), state \(state)")
        say("soak: fault log \(faultLog)")
        let faults = FaultInjector(seed: options.seed, testbed: testbed, coordinator: coordinator, scratch: scratch, journalDisk: journalDisk,
                                   bastion: bastion, files: files, logPath: faultLog, started: started, minutes: options.minutes)
        if faults.coordinatorKillsEnd.isFinite {
            faults.log("no kill-coordinator after T+\(Int(faults.coordinatorKillsEnd)) s: the coordinator then started lives through the second half, whose memory is judged")
        }
        let memory = MemorySampler(testbed: testbed, started: started) { [unowned self] in self.root(of: $0) }
        var status: Int32 = 1
        do {
            status = try soak(faults, memory)
        } catch {
            say("soak: error: \(error)")
        }
        cleanUp(faults)
        if Interrupt.pending && status == 0 { status = 130 }
        say("soak: \(status == 0 ? "PASSED" : status == 130 ? "INTERRUPTED" : "FAILED") — seed \(options.seed), \(options.minutes) min, \(kinds.count) jobs, \(faults.total) faults (\(faults.summary))")
        say("soak: replay with: soak/run --minutes \(Self.number(options.minutes)) --seed \(options.seed)")
        say("soak: fault log: \(faultLog)")
        return status
    }

    static func number(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(d) }

    private func soak(_ faults: FaultInjector, _ memory: MemorySampler) throws -> Int32 {
        try healAll()
        scratch.unmount()  // whatever an interrupted earlier run left
        try scratch.mount()
        try files.install(testbed)
        try coordinator.start()
        let journal = try Journal(StateLocation(explicit: state))
        faults.checkpointedHosts = { [unowned self] in (try? self.checkpointedHosts(journal)) ?? [] }
        faults.journal = journal
        faults.submit = { [unowned self] request, kind in
            let id = try journal.submit(request)
            self.kinds[id] = kind
            return id
        }
        try waitFor("every host up", timeout: 90) { try journal.hosts().filter { $0.state == "up" }.count == testbed.hosts.count }
        faults.log("\(testbed.hosts.count) hosts up\(bastion.map { "; \(faults.behind($0).joined(separator: ", ")) behind the bastion \($0)" } ?? ""); jobs and faults start (\(scratch.host)'s agent root is a \(scratch.megabytes) MiB tmpfs, the state directory a \(journalDisk.megabytes) MiB tmpfs)")

        // Fault phase: submit and inject until the time is up and every kind of the opening ran;
        // the last fault then runs its course (its effect is checked).
        let end = started.addingTimeInterval(options.minutes * 60)
        var nextSubmit = Date()
        while (Date() < end || !faults.openingDone || faults.active != nil) && !Interrupt.pending {
            try keepCoordinator(faults)
            if Date() >= nextSubmit && (Date() < end || !faults.openingDone) {
                do {
                    let open = try journal.db.query("SELECT COUNT(*) AS n FROM jobs WHERE state IN \(JobState.openSQL)").first?.int("n") ?? 0
                    if open < Self.openCap {
                        let kind = rng.weighted(JobKind.weights)
                        let id = try journal.submit(kind.request(&rng, files: files))
                        kinds[id] = kind
                    }
                } catch where faults.active?.kind == .journalFull {
                    // The journal's disk is full: submissions fail (nothing recorded), as they would for a user.
                    faults.refusedSubmissions += 1
                }
                nextSubmit = Date().addingTimeInterval(rng.uniform(0.2...1.0))
            }
            try faults.tick(startNew: Date() < end || !faults.openingDone, remaining: end.timeIntervalSinceNow)
            memory.tick(coordinator: coordinator)
            usleep(50_000)
        }
        try faults.finish()
        if Interrupt.pending { return 130 }
        faults.log("fault phase over: \(kinds.count) jobs submitted; healing every host and waiting for every job to end")
        try healAll()
        try scratch.mount()
        if !coordinator.running { try coordinator.start() }
        journalDisk.drain()

        // Drain: every job final, no attempt left on a host, every host up.
        let drainEnd = Date().addingTimeInterval(Self.drainLimit)
        while Date() < drainEnd && !Interrupt.pending {
            if coordinator.reapIfExited() {
                crashes.append("the coordinator exited by itself at T+\(Int(elapsed)) s")
                try coordinator.start()
            }
            memory.tick(coordinator: coordinator)
            let open = try journal.db.query("SELECT COUNT(*) AS n FROM jobs WHERE state IN \(JobState.openSQL)").first?.int("n") ?? 0
            let live = try journal.liveAttempts().count
            let up = try journal.hosts().filter { $0.state == "up" }.count
            let quarantined = try journal.quarantines().filter(\.isQuarantined).map(\.host)
            if open == 0 && live == 0 && up == testbed.hosts.count && quarantined.isEmpty { break }
            if open == 0 && live == 0 {
                // Nothing left to serve as a probe: one short job pinned to each quarantined host.
                for h in quarantined {
                    var r = JobKind.short.request(&rng, files: files)
                    r.host = h
                    kinds[try journal.submit(r)] = .short
                    faults.log("drain: a short job pinned to \(h), still quarantined, to serve as its probe")
                }
            }
            usleep(250_000)
        }
        if Interrupt.pending { return 130 }
        faults.log("drain over (open jobs: \(try journal.db.query("SELECT COUNT(*) AS n FROM jobs WHERE state IN \(JobState.openSQL)").first?.int("n") ?? -1)); checking invariants")
        return try check(journal, faults: faults, memory: memory)
    }

    /// Notices a coordinator that exited by itself (a crash) and starts it again, except while
    /// the soak has it killed or its disk full (it is started again when that fault ends).
    private func keepCoordinator(_ faults: FaultInjector) throws {
        let kind = faults.active?.kind
        if kind != .coordinatorKill, coordinator.reapIfExited() {
            crashes.append("the coordinator exited by itself at T+\(Int(elapsed)) s\(kind == .journalFull ? " (its state directory full)" : "")")
            faults.log("the coordinator exited by itself" + (kind == .journalFull ? "; started again once its disk has room" : "; starting it again"))
        }
        if !coordinator.running && kind != .coordinatorKill && kind != .journalFull { try coordinator.start() }
    }

    private func check(_ journal: Journal, faults: FaultInjector, memory: MemorySampler) throws -> Int32 {
        let cid = try journal.coordinatorID()
        // The logs are read once the journal has applied all of them (or after 20 s).
        var records: [String: AgentRecords] = [:]
        var hosts: [HostRecord] = []
        let readEnd = Date().addingTimeInterval(20)
        repeat {
            records = [:]
            for h in testbed.hosts {
                records[h] = try AgentRecords.read(testbed, host: h, root: root(of: h), files: files, coordinator: cid)
            }
            hosts = try journal.hosts()
            if hosts.allSatisfy({ records[$0.name]?.lastSeq == $0.lastSeq }) { break }
            usleep(500_000)
        } while Date() < readEnd
        // Processes with a cookie: given the same time to disappear.
        var leftovers: [String: [String]] = [:]
        let orphanEnd = Date().addingTimeInterval(30)
        repeat {
            leftovers = [:]
            for h in testbed.hosts {
                let text = try testbed.shell(h, #"for f in /proc/[0-9]*/environ; do if grep -qa DROVER_COOKIE= "$f" 2>/dev/null; then p=${f#/proc/}; p=${p%/environ}; printf '%s %s\n' "$p" "$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null)"; fi; done"#)
                let lines = text.split(separator: "\n").map(String.init)
                if !lines.isEmpty { leftovers[h] = lines }
            }
            if leftovers.isEmpty { break }
            usleep(1_000_000)
        } while Date() < orphanEnd

        let jobs = try journal.jobs()
        var attempts: [Int: [AttemptRecord]] = [:]
        for job in jobs { attempts[job.id] = try journal.attempts(of: job.id) }
        var dispatchTimes: [String: Double] = [:]
        for r in try journal.db.query("SELECT job, attempt, dispatched_at FROM attempts") {
            if let j = r.int("job"), let n = r.int("attempt") { dispatchTimes["\(j)/\(n)"] = r.double("dispatched_at") }
        }
        let events = try journal.events(limit: 10_000_000)
        var inv = try Invariants(journal: journal, kinds: kinds, records: records, scratchHost: scratch.host, scratchWipes: faults.scratchWipes)
        var effects = faults.effects
        inv.checkFaultEffects(&effects, longPartitions: faults.longPartitions, attempts: attempts, events: events, started: started.timeIntervalSince1970)
        faults.effects = effects
        inv.checkFaultCounts(effects, minutes: options.minutes, setting: faults.setting)
        inv.checkOneFinalState(jobs, events: events)
        inv.checkOneAcceptedSuccess(jobs, attempts: attempts)
        inv.checkSideEffects(jobs, attempts: attempts, windows: windows(faults), stalePolicy: Self.stalePolicy)
        inv.checkExpectedOutcomes(jobs, attempts: attempts)
        inv.checkNoOrphans(leftovers)
        inv.checkAuditMatchesAgents(hosts, attempts: attempts, events: events, dispatchTimes: dispatchTimes)
        inv.checkMemory(memory.trends(), sqlitePeak: memory.sqlitePeak)
        let hostFaults = effects.compactMap { e -> (hosts: Set<String>, at: Double)? in
            e.host.map { (Set([$0] + faults.behind($0)), started.timeIntervalSince1970 + e.at) }
        }
        inv.checkNoRerunForSleep(events, sleeps: faults.coordinatorSleeps, faultBegins: faults.begins, hostFaults: hostFaults)
        inv.checkCheckpointRestarts(jobs, attempts: attempts, events: events, powerOffs: faults.powerOffs, outages: faults.coordinatorOutages)
        inv.checkBlackHoles(faults.blackHoles, jobs: jobs, attempts: attempts, events: events, quarantines: try journal.quarantines(),
                            threshold: Self.quarantineFailures, started: started.timeIntervalSince1970)
        inv.checkNoCrash(crashes)
        say("")
        say(inv.table())
        if !inv.passed {
            for (h, r) in records {
                try? AtomicFile.write(Array(r.text.utf8), to: "\(state)/\(h)-events.log")
                let agentLog = (try? testbed.shell(h, #"cat "$1/agent.log" 2>/dev/null || true"#, root(of: h))) ?? ""
                try? AtomicFile.write(Array(agentLog.utf8), to: "\(state)/\(h)-agent.log")
            }
            say("soak: the journal, the coordinator log and the agents' event logs are kept in \(state) (--keep-state is implied on failure)")
            keep = true
        }
        return inv.passed ? 0 : 1
    }

    private var keep = false

    /// The hosts (in the testbed's order) where a `checkpointed` job runs whose attempt there
    /// already has a snapshot in the coordinator's store.
    func checkpointedHosts(_ journal: Journal) throws -> [String] {
        var hosts: Set<String> = []
        for a in try journal.liveAttempts() where kinds[a.job] == .checkpointed && a.agentState == "running" && !a.stale {
            if let c = try journal.checkpoint(of: a.job), c.attempt == a.attempt { hosts.insert(a.host) }
        }
        return testbed.hosts.filter(hosts.contains)
    }

    /// Every host on and connected.
    /// The windows in which a replaced attempt could run to its end before the coordinator
    /// could kill it: its host cut off, its disk full, the coordinator away or its disk full.
    func windows(_ faults: FaultInjector) -> [Invariants.Window] {
        var out = faults.cuts.map { Invariants.Window(host: $0.host, from: $0.from, to: $0.to, what: "a cut-off of its host") }
        out += faults.coordinatorOutages.map { Invariants.Window(host: nil, from: $0.from, to: $0.to, what: "a coordinator outage") }
        out += faults.journalFulls.map { Invariants.Window(host: nil, from: $0.from, to: $0.to, what: "a full journal disk") }
        out += faults.diskFulls.map { Invariants.Window(host: scratch.host, from: $0.from, to: $0.to, what: "a full agent disk") }
        return out
    }

    func healAll() throws {
        let status = try testbed.status()
        for h in testbed.hosts {
            if status[h]?.power != "on" { try testbed.start(h) }
            else if status[h]?.network != "up" { try testbed.heal(h) }
        }
    }

    func waitFor(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while try !condition() {
            if Interrupt.pending { throw SoakFailure("interrupted while waiting for \(what)") }
            if Date() > deadline { throw SoakFailure("timed out after \(Int(timeout)) s waiting for \(what)") }
            usleep(100_000)
        }
    }

    /// Leaves the testbed as it was: faults undone, coordinator down with --kill-jobs, the
    /// tmpfs unmounted, the soak's agent roots, evidence files and state removed.
    func cleanUp(_ faults: FaultInjector) {
        say("soak: cleaning up")
        do { try faults.finish() } catch { say("soak: cleanup: \(error)") }
        do { try healAll() } catch { say("soak: cleanup: \(error)") }
        try? scratch.mount()
        let down = coordinator.down()
        if !down.isEmpty { say(down.split(separator: "\n").map { "soak: drover down: \($0)" }.joined(separator: "\n")) }
        scratch.unmount()
        for h in testbed.hosts {
            _ = try? testbed.shell(h, #"rm -rf "$1""#, Self.defaultRoot)
            try? files.remove(on: h, testbed)
        }
        journalDisk.drain()
        faults.journal = nil
        if keep || options.keepState {
            // The state directory is a tmpfs: its contents are copied to this machine's disk first.
            let kept = state + ".kept"
            _ = try? ChildProcess.run(["/bin/cp", "-a", state, kept], timeout: 120)
            say("soak: state kept in \(kept)")
        }
        journalDisk.unmount()
        _ = try? ChildProcess.run(["/bin/rm", "-rf", state])
    }
}
