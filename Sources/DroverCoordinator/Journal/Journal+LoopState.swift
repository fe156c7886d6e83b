import DroverCore
import DroverProtocol

/// The coordinator loop's writes and reads of hosts, jobs and attempts, so that its SQL lives
/// here with the rest of the journal's (docs/architecture.md, "The journal").
extension Journal {
    // MARK: Hosts

    /// Registers an inventory host as `connecting` at the loop's start; its applied event seq.
    func registerHost(_ name: String, at time: Double) throws -> Int {
        try db.run("""
            INSERT INTO hosts(name, state, since) VALUES (?, 'connecting', ?)
            ON CONFLICT(name) DO UPDATE SET state='connecting', since=excluded.since, error=NULL
            """, .text(name), .double(time))
        return try db.query("SELECT last_seq FROM hosts WHERE name=?", .text(name)).first?.int("last_seq") ?? 0
    }

    /// The highest event seq of `host` applied (0 after its agent's log was replaced).
    func setLastSeq(_ host: String, _ seq: Int) throws {
        try db.run("UPDATE hosts SET last_seq=? WHERE name=?", .int(Int64(seq)), .text(host))
    }

    /// What a heartbeat tells of its host.
    struct Beat {
        var time: Double?
        var seq: Int?
        var version: String?
        var build: String?
        var slots: Int?
        var machineID: String?
        var coordinators: Int?
        /// Load and memory (nil from an agent that does not send them).
        var load: HostLoad?
    }

    /// Format 7 (issue 16): each host's 1-minute load and memory, as of its last recorded beat.
    static func addHostLoad(_ db: SQLiteDatabase) throws {
        for (column, definition) in [("load1", "REAL"), ("mem_available", "INTEGER"), ("mem_total", "INTEGER")] {
            let have = try db.query("PRAGMA table_info(hosts)").contains { $0.string("name") == column }
            if !have { try db.execute("ALTER TABLE hosts ADD COLUMN \(column) \(definition)") }
        }
    }

    func recordHeartbeat(_ host: String, _ b: Beat) throws {
        try db.run("""
            UPDATE hosts SET heartbeat_time=?, heartbeat_seq=?, agent_version=coalesce(?, agent_version), agent_build=coalesce(?, agent_build),
            slots=?, machine_id=coalesce(?, machine_id), coordinators=?, load1=?, mem_available=?, mem_total=? WHERE name=?
            """, .from(b.time), .from(b.seq), .from(b.version), .from(b.build), .from(b.slots), .from(b.machineID), .from(b.coordinators),
            .from(b.load?.load1), .from(b.load?.memoryAvailableBytes.map { Int(clamping: $0) }), .from(b.load?.memoryTotalBytes.map { Int(clamping: $0) }), .text(host))
    }

    func setHostState(_ host: String, _ state: String, since: Double, error: String? = nil) throws {
        if let error {
            try db.run("UPDATE hosts SET state=?, since=?, error=? WHERE name=?", .text(state), .double(since), .text(error), .text(host))
        } else {
            try db.run("UPDATE hosts SET state=?, since=? WHERE name=?", .text(state), .double(since), .text(host))
        }
    }

    /// The link connected: the agent's build, and no error any more.
    func setConnected(_ host: String, agentBuild: String?) throws {
        try db.run("UPDATE hosts SET agent_build=?, error=NULL WHERE name=?", .from(agentBuild), .text(host))
    }

    func setHostError(_ host: String, _ error: String) throws {
        try db.run("UPDATE hosts SET error=? WHERE name=?", .text(error), .text(host))
    }

    func setSameMachine(_ host: String, as earlier: String?) throws {
        try db.run("UPDATE hosts SET same_machine_as=? WHERE name=?", .from(earlier), .text(host))
    }

    /// The agent's state on `host` was replaced: its attempts will never be reported, so they
    /// count as ended, and its event log starts again.
    func forgetAgentState(_ host: String) throws {
        try db.run("UPDATE attempts SET agent_state='lost' WHERE host=? AND (agent_state IS NULL OR agent_state NOT IN \(AgentStates.finalSQL))", .text(host))
        try setLastSeq(host, 0)
    }

    // MARK: Jobs

    /// Jobs whose cancel was requested and that are not over yet.
    func jobsToCancel() throws -> [Int] {
        try db.query("SELECT id FROM jobs WHERE cancel_requested=1 AND state IN \(JobState.openSQL)").compactMap { $0.int("id") }
    }

    /// Ends a job (never twice: a final job is never changed again); false when it already was.
    func finishJob(_ id: Int, _ state: JobState, reason: String, exitCode: Int?, signal: String?, at time: Double) throws -> Bool {
        // Its request leaves the cache now: a job nobody reads again would hold it until the
        // cache's limit (4,096 jobs, megabytes) cleared it.
        forgetRequest(id)
        return try db.run("""
            UPDATE jobs SET state=?, reason=?, exit_code=?, signal=?, ended_at=? WHERE id=? AND state NOT IN \(JobState.finalSQL)
            """, .text(state.rawValue), .text(reason), .from(exitCode), .from(signal), .double(time), .int(Int64(id))) > 0
    }

    /// Counts one more failure (or host loss, `lost`) of a job.
    func setRetriesUsed(_ id: Int, _ used: Int, lost: Bool) throws {
        try db.run("UPDATE jobs SET \(lost ? "losses" : "failures")=? WHERE id=?", .int(Int64(used)), .int(Int64(id)))
    }

    /// Back to the queue, to start no earlier than `notBefore`.
    func requeue(_ id: Int, notBefore: Double?) throws {
        try db.run("UPDATE jobs SET state='queued', host=NULL, not_before=? WHERE id=?", .from(notBefore), .int(Int64(id)))
    }

    /// The exit of the job's current attempt, kept on the job.
    func setJobExit(_ id: Int, exitCode: Int?, signal: String?) throws {
        try db.run("UPDATE jobs SET exit_code=?, signal=? WHERE id=?", .from(exitCode), .from(signal), .int(Int64(id)))
    }

    /// Its current attempt runs: the job does (its first start time kept).
    func markJobRunning(_ id: Int, at time: Double) throws {
        try db.run("UPDATE jobs SET state='running', started_at=coalesce(started_at, ?) WHERE id=? AND state IN ('dispatched','queued')", .double(time), .int(Int64(id)))
    }

    /// Jobs whose current attempt is (or was, its results unfetched) on `host`.
    func jobsPlaced(on host: String) throws -> [Int] {
        try db.query("SELECT id FROM jobs WHERE host=? AND state IN ('dispatched','running')", .text(host)).compactMap { $0.int("id") }
    }

    // MARK: Attempts

    /// Records attempt `n` of a job as dispatched to `host` (and the job as dispatched).
    func recordDispatch(job id: Int, attempt n: Int, host: String, slot: Int?, at time: Double) throws {
        try db.run("INSERT INTO attempts(job, attempt, host, state, dispatched_at, slot) VALUES (?, ?, ?, 'dispatched', ?, ?)",
                   .int(Int64(id)), .int(Int64(n)), .text(host), .double(time), .from(slot))
        try db.run("UPDATE jobs SET state='dispatched', attempt=?, host=? WHERE id=?", .int(Int64(n)), .text(host), .int(Int64(id)))
    }

    /// The slot (`{%}`) an attempt was given, if it asked for one.
    func slot(of id: Int, attempt n: Int) throws -> Int? {
        try db.query("SELECT slot FROM attempts WHERE job=? AND attempt=?", .int(Int64(id)), .int(Int64(n))).first?.int("slot")
    }

    /// What an agent transition changes on an attempt's row.
    struct AttemptUpdate {
        var agentState: String
        var startedAt: Double?
        /// Set for a final transition: its time, exit, signal and usage.
        var ended: (time: Double, exitCode: Int?, signal: String?, maxRSSBytes: Int?, cpuSeconds: Double)?
        var state: String?
        var reason: String?
    }

    func updateAttempt(_ id: Int, _ n: Int, _ u: AttemptUpdate) throws {
        var sets = ["agent_state=?"]
        var values: [SQLValue] = [.text(u.agentState)]
        if let t = u.startedAt { sets.append("started_at=?"); values.append(.double(t)) }
        if let e = u.ended {
            sets += ["ended_at=?", "exit_code=?", "signal=?", "max_rss_bytes=?", "cpu_seconds=?"]
            values += [.double(e.time), .from(e.exitCode), .from(e.signal), .from(e.maxRSSBytes), .double(e.cpuSeconds)]
        }
        if let s = u.state { sets.append("state=?"); values.append(.text(s)) }
        if let r = u.reason { sets.append("reason=?"); values.append(.text(r)) }
        try db.run("UPDATE attempts SET \(sets.joined(separator: ", ")) WHERE job=? AND attempt=?", values + [.int(Int64(id)), .int(Int64(n))])
    }

    /// The agent never saw this start (it was lost before reaching the inbox).
    func markNeverStarted(_ id: Int, attempt n: Int) throws {
        try db.run("UPDATE attempts SET agent_state='never_started' WHERE job=? AND attempt=?", .int(Int64(id)), .int(Int64(n)))
    }

    /// A stale attempt no longer counts (`reason` says why).
    func markStale(_ id: Int, attempt n: Int, reason: String) throws {
        try db.run("UPDATE attempts SET stale=1, reason=? WHERE job=? AND attempt=?", .text(reason), .int(Int64(id)), .int(Int64(n)))
    }

    /// An attempt that still runs is the job's again (`keep-original`): current, in `state`.
    func adoptAttempt(_ id: Int, attempt n: Int, host: String, attemptState: String, jobState: String) throws {
        try db.run("UPDATE attempts SET stale=0, state=?, reason=NULL WHERE job=? AND attempt=?", .text(attemptState), .int(Int64(id)), .int(Int64(n)))
        try db.run("UPDATE jobs SET state=?, attempt=?, host=? WHERE id=?", .text(jobState), .int(Int64(n)), .text(host), .int(Int64(id)))
    }

    /// Attempts on `host` the journal believes alive (sent, or reported starting or running).
    func openAttempts(on host: String) throws -> [(job: Int, attempt: Int)] {
        try db.query("SELECT job, attempt FROM attempts WHERE host=? AND stale=0 AND state IN ('dispatched','accepted','starting','running')", .text(host))
            .compactMap { r in r.int("job").flatMap { j in r.int("attempt").map { (j, $0) } } }
    }

    func markLost(_ id: Int, attempt n: Int, reason: String) throws {
        try db.run("UPDATE attempts SET state='lost', stale=1, reason=? WHERE job=? AND attempt=?", .text(reason), .int(Int64(id)), .int(Int64(n)))
    }

    /// Attempts on `host` that its agent still runs but that must not (replaced, or their job is over).
    func staleLiveCount(on host: String) throws -> Int {
        return try db.query("""
            SELECT COUNT(*) AS n FROM attempts a JOIN jobs j ON j.id=a.job
            WHERE a.host=? AND a.agent_state IS NOT NULL AND a.agent_state NOT IN \(AgentStates.finalSQL)
              AND (a.stale=1 OR j.state IN \(JobState.finalSQL) OR j.attempt != a.attempt)
            """, .text(host)).first?.int("n") ?? 0
    }
}
