import DroverCore
import Foundation

/// The coordinator's journal: jobs, attempts, hosts and the audit trail in one SQLite
/// database (WAL) under the state directory. Commands read it while the coordinator runs;
/// `submit` and `cancel` write requests into it that the coordinator picks up.
public final class Journal {
    public let db: SQLiteDatabase
    public let state: StateLocation
    /// Decoded job requests by job id, with the text they came from: the scheduler reads the
    /// same queued jobs round after round, and decoding their JSON dominated its cost.
    ///
    /// The coordinator reads the jobs it schedules, dispatches and concludes, and keeps only
    /// unfinished jobs' requests (about 1 KiB each, with their text): a finished job's entry is
    /// dropped when this journal ends the job, or when it is read finished (another process
    /// ended it), so the cache follows the jobs in flight, not the jobs run. A reader that
    /// reads every job of a batch over and over (`drover map`'s follower, which holds those
    /// jobs anyway) keeps them all (`keepsEveryRequest`): cleared at a
    /// limit, a cache smaller than the batch missed on every row, and the follower of a
    /// 1,500-job map spent most of its time decoding JSON (docs/performance.md).
    private let requests = Locked(RequestCache())

    struct RequestCache {
        var entries: [Int: (text: String, request: JobRequest)] = [:]
        /// Cleared when it holds this many (unless it keeps every request).
        var limit = 4_096
        var keepsAll = false
        /// Misses (requests decoded), for tests.
        var decoded = 0
    }

    /// How many decoded job requests this journal keeps (default 4,096).
    public var requestCacheLimit: Int {
        get { requests.withLock { $0.limit } }
        set { requests.withLock { $0.limit = max(1, newValue) } }
    }
    /// Keep every request decoded, finished jobs' too, without limit (a batch's follower).
    public var keepsEveryRequest: Bool {
        get { requests.withLock { $0.keepsAll } }
        set { requests.withLock { $0.keepsAll = newValue } }
    }
    /// How many requests this journal decoded (cache misses), for tests.
    var decodedRequests: Int { requests.withLock { $0.decoded } }
    /// How many requests the cache holds now, for tests.
    var cachedRequests: Int { requests.withLock { $0.entries.count } }

    /// Opens (creating when needed) the journal in `state`. Every commit made through it
    /// rings the coordinator (touches `state.wakePath`), except with `ringsCoordinator`
    /// false: the coordinator's own journal, whose commits must not wake itself.
    public init(_ state: StateLocation, ringsCoordinator: Bool = true) throws {
        self.state = state
        try state.prepare()
        let path = state.journalPath
        // Create the file 0600 before SQLite opens it (SQLite gives its -wal and -shm files the
        // database file's mode). Not with umask: it is process-wide, and other threads may
        // create files meanwhile.
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            fchmod(fd, 0o600)
            close(fd)
        }
        db = try SQLiteDatabase(path: path)
        // Refuses a journal from a newer drover before touching it, then runs the steps this
        // one lacks (none, usually: one read of user_version).
        try Self.checkFormat(db)
        try Self.migrator.migrate(db)
        if ringsCoordinator { db.ringAfterCommits(state.wakePath) }
    }

    /// The id that names this journal's coordinator to agents (leases, specs, job names).
    public func coordinatorID() throws -> String {
        try meta("coordinator_id") ?? "unknown"
    }

    public func meta(_ key: String) throws -> String? {
        try db.query("SELECT value FROM meta WHERE key=?", .text(key)).first?.string("value")
    }

    public func setMeta(_ key: String, _ value: String) throws {
        try db.run("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", .text(key), .text(value))
    }

    /// Appends one line to the audit trail (inside the caller's transaction when there is one).
    public func audit(_ kind: String, job: Int? = nil, attempt: Int? = nil, host: String? = nil, state: String? = nil, _ message: String, time: Double = Date().timeIntervalSince1970) throws {
        try db.run("INSERT INTO events(time, kind, job, attempt, host, state, message) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   .double(time), .text(kind), .from(job), .from(attempt), .from(host), .from(state), .text(message))
    }

    // MARK: Requests from commands

    /// Records a new queued job and returns its id.
    public func submit(_ request: JobRequest) throws -> Int {
        try db.transaction { try insert(request) }
    }

    /// Records many queued jobs in one transaction (all or none) and returns their ids.
    public func submit(_ requests: [JobRequest]) throws -> [Int] {
        try db.transaction { try requests.map { try insert($0) } }
    }

    func insert(_ request: JobRequest, state: JobState = .queued, batch: String? = nil, batchJob: String? = nil, specHash: String? = nil) throws -> Int {
        let data = try JSONEncoder().encode(request)
        let now = Date().timeIntervalSince1970
        try db.run("""
            INSERT INTO jobs(name, request, state, priority, slots, submitted_at, batch, batch_job, spec_hash, started_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
                   .from(request.name), .text(String(decoding: data, as: UTF8.self)), .text(state.rawValue), .int(Int64(request.priority)),
                   .int(Int64(request.slots)), .double(now), .from(batch), .from(batchJob), .from(specHash), state == .approval ? .double(now) : .null)
        let id = Int(db.lastInsertRowID)
        try audit("submitted", job: id, state: state.rawValue, batch.map { "\($0)/\(batchJob ?? "?"): \(request.commandLine)" } ?? request.commandLine)
        return id
    }

    /// Marks jobs for cancellation; returns the ids that were not already final.
    public func requestCancel(_ ids: [Int]) throws -> [Int] {
        try db.transaction {
            var out: [Int] = []
            for id in ids {
                let n = try db.run("UPDATE jobs SET cancel_requested=1 WHERE id=? AND cancel_requested=0 AND state NOT IN \(JobState.finalSQL)", .int(Int64(id)))
                if n > 0 {
                    out.append(id)
                    try audit("cancel_requested", job: id, "cancel requested by user")
                }
            }
            return out
        }
    }

    // MARK: Reading

    /// `IN` with a list of ids bound as one parameter (`idList`): the SQL text stays the
    /// same whatever the ids, so one prepared statement serves every list (ids put in the
    /// text would prepare and keep one statement per distinct list).
    static let inIDList = "(SELECT value FROM json_each(?))"

    /// The parameter for `inIDList`: the ids as a JSON array.
    static func idList(_ ids: some Sequence<Int>) -> SQLValue {
        .text("[" + ids.map(String.init).joined(separator: ",") + "]")
    }

    static let jobColumns = "id, name, request, state, attempt, host, failures, losses, exit_code, signal, reason, submitted_at, started_at, ended_at, cancel_requested, batch, batch_job, not_before, compensates, compensation, compensation_job, escalation"

    func job(from row: SQLRow) -> JobRecord? {
        guard let id = row.int("id"), let text = row.string("request"),
              let state = row.string("state").flatMap(JobState.init(rawValue:)),
              let request = request(id, text, finished: state.isFinal) else { return nil }
        return JobRecord(id: id, name: row.string("name"), request: request, state: state, attempt: row.int("attempt") ?? 0,
                         host: row.string("host"), failures: row.int("failures") ?? 0, losses: row.int("losses") ?? 0,
                         exitCode: row.int("exit_code"), signal: row.string("signal"), reason: row.string("reason"),
                         submittedAt: row.double("submitted_at") ?? 0, startedAt: row.double("started_at"),
                         endedAt: row.double("ended_at"), cancelRequested: row.int("cancel_requested") == 1,
                         batch: row.string("batch"), batchJob: row.string("batch_job"), notBefore: row.double("not_before"),
                         compensates: row.int("compensates"), compensation: row.string("compensation").flatMap(CompensationState.init(rawValue:)),
                         compensationJob: row.int("compensation_job"), escalation: row.string("escalation"))
    }

    /// The request of job `id` decoded from `text`, from the cache when the text is the same.
    private func request(_ id: Int, _ text: String, finished: Bool) -> JobRequest? {
        let (hit, keep) = requests.withLock { cache in
            let keep = !finished || cache.keepsAll
            let hit = cache.entries[id]
            if !keep { cache.entries[id] = nil }
            return (hit, keep)
        }
        if let hit, hit.text == text { return hit.request }
        guard let decoded = try? JSONDecoder().decode(JobRequest.self, from: Data(text.utf8)) else { return nil }
        requests.withLock { cache in
            cache.decoded += 1
            guard keep else { return }
            if !cache.keepsAll && cache.entries.count >= cache.limit { cache.entries.removeAll(keepingCapacity: true) }
            cache.entries[id] = (text, decoded)
        }
        return decoded
    }

    /// Drops job `id`'s request from the cache (unless it keeps every request): the job was
    /// just ended through this journal, and nothing may read it again to drop it then.
    func forgetRequest(_ id: Int) {
        requests.withLock { cache in
            if !cache.keepsAll { cache.entries[id] = nil }
        }
    }

    /// One job, or nil.
    public func job(_ id: Int) throws -> JobRecord? {
        try db.query("SELECT \(Self.jobColumns) FROM jobs WHERE id=?", .int(Int64(id))).first.flatMap(job(from:))
    }

    /// Jobs by id (all when `ids` is empty), oldest first.
    public func jobs(_ ids: [Int] = []) throws -> [JobRecord] {
        if ids.isEmpty { return try db.query("SELECT \(Self.jobColumns) FROM jobs ORDER BY id").compactMap(job(from:)) }
        return try ids.compactMap { try job($0) }
    }

    /// Jobs in these states, in queue order (priority, then age); with `readyAt`, only jobs whose retry back-off is over.
    /// The time is bound, not written into the SQL, so each round reuses one prepared statement.
    public func jobs(in states: [JobState], readyAt: Double? = nil, limit: Int = -1) throws -> [JobRecord] {
        // The states are our own constants: one statement per set of states.
        let list = states.map { "'\($0.rawValue)'" }.joined(separator: ",")
        let rows: [SQLRow]
        if let readyAt {
            rows = try db.query("SELECT \(Self.jobColumns) FROM jobs WHERE state IN (\(list)) AND (not_before IS NULL OR not_before <= ?) ORDER BY priority DESC, id LIMIT ?",
                                .double(readyAt), .int(Int64(limit)))
        } else {
            rows = try db.query("SELECT \(Self.jobColumns) FROM jobs WHERE state IN (\(list)) ORDER BY priority DESC, id LIMIT ?", .int(Int64(limit)))
        }
        return rows.compactMap(job(from:))
    }

    /// The earliest end of a retry back-off after `time` (when a queued job becomes ready), if any.
    public func nextRetry(after time: Double) throws -> Double? {
        try db.query("SELECT MIN(not_before) AS t FROM jobs WHERE state='queued' AND not_before > ?", .double(time)).first?.double("t")
    }

    /// Finds a job by id or by name (the newest job with that name).
    public func resolve(_ reference: String) throws -> JobRecord? {
        if let id = Int(reference), let j = try job(id) { return j }
        return try db.query("SELECT \(Self.jobColumns) FROM jobs WHERE name=? ORDER BY id DESC LIMIT 1", .text(reference)).first.flatMap(job(from:))
    }

    /// Audit events after `id`, oldest first (optionally of some jobs only).
    public func events(after id: Int = 0, job: Int? = nil, jobs: [Int]? = nil, limit: Int = 10_000) throws -> [AuditEvent] {
        let rows: [SQLRow]
        if let job {
            rows = try db.query("SELECT * FROM events WHERE id>? AND job=? ORDER BY id LIMIT ?", .int(Int64(id)), .int(Int64(job)), .int(Int64(limit)))
        } else if let jobs {
            // The ids as one bound JSON array: one statement whatever the list.
            let list = "[" + jobs.map(String.init).joined(separator: ",") + "]"
            rows = try db.query("SELECT * FROM events WHERE id>? AND job IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT ?",
                                .int(Int64(id)), .text(list), .int(Int64(limit)))
        } else {
            rows = try db.query("SELECT * FROM events WHERE id>? ORDER BY id LIMIT ?", .int(Int64(id)), .int(Int64(limit)))
        }
        return rows.map { r in
            AuditEvent(id: r.int("id") ?? 0, time: r.double("time") ?? 0, kind: r.string("kind") ?? "", job: r.int("job"),
                       attempt: r.int("attempt"), host: r.string("host"), state: r.string("state"), message: r.string("message") ?? "")
        }
    }

    /// Records how far an approval gate's SLA went (`waiting`, `escalated`, `timed_out`).
    public func setEscalation(_ job: Int, _ value: String) throws {
        try db.run("UPDATE jobs SET escalation=? WHERE id=?", .text(value), .int(Int64(job)))
    }

    /// The id of the newest audit event (0 when there is none).
    public func lastEventID() throws -> Int {
        try db.query("SELECT MAX(id) AS m FROM events").first?.int("m") ?? 0
    }
}
