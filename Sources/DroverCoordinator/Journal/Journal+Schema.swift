import Foundation

/// The journal's format: numbered migration steps (`SQLiteMigrator`), and the check that
/// refuses a journal written by a newer `drover`.
///
/// The format number is kept twice: in `PRAGMA user_version` (what the migrator reads) and
/// in `meta.format` (what a person sees with `sqlite3 journal.db 'SELECT * FROM meta'`).
/// Journals from before the migrator have user_version 0 and `meta.format` 1; both steps
/// are written so that they also apply to such a journal, whatever columns it has already.
extension Journal {
    /// The newest journal format this build writes.
    public static var format: Int { migrator.latest }

    static let migrator: SQLiteMigrator = {
        var m = SQLiteMigrator()
        m.register(1, "tables and the coordinator id") { db in
            try db.execute(baseSchema)
            let id = String(format: "%08x", UInt32.random(in: 0...UInt32.max))
            try db.run("INSERT OR IGNORE INTO meta(key, value) VALUES ('coordinator_id', ?), ('epoch', '0')", .text(id))
        }
        m.register(2, "batches, retries, input slots and machine identity") { db in
            for (table, column, definition) in addedColumns {
                let have = try db.query("PRAGMA table_info(\(table))").contains { $0.string("name") == column }
                if !have { try db.execute("ALTER TABLE \(table) ADD COLUMN \(column) \(definition)") }
            }
            try db.execute("CREATE INDEX IF NOT EXISTS jobs_batch ON jobs(batch, batch_job)")
        }
        m.register(3, "host quarantine (circuit breakers) and the head of failed attempts' stderr") { db in
            try addQuarantine(db)
        }
        m.register(4, "checkpoints: the newest snapshot of each job") { db in
            try db.execute(checkpointsSchema)
        }
        m.register(5, "sagas (compensations), approval escalation and notifications") { db in
            try addSagasAndNotifications(db)
        }
        m.register(6, "host facts (OS, kernel, CPU, GPUs and the inventory's facts)") { db in
            try addHostFacts(db)
        }
        m.register(7, "hosts' load and memory from their heartbeats") { db in
            try addHostLoad(db)
        }
        m.afterStep = { db, version in
            try db.run("INSERT INTO meta(key, value) VALUES ('format', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", .text(String(version)))
        }
        return m
    }()

    /// Throws `JournalFormatError` when `user_version` or `meta.format` is newer than this build.
    static func checkFormat(_ db: SQLiteDatabase) throws {
        let recorded = try SQLiteMigrator.version(of: db)
        var found = recorded
        let hasMeta = try !db.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").isEmpty
        if hasMeta, let text = try db.query("SELECT value FROM meta WHERE key='format'").first?.string("value") {
            found = max(found, Int(text) ?? 0)
        }
        if found > format { throw JournalFormatError(path: db.path, found: found, known: format) }
    }

    /// Format 1: the tables as the first release created them.
    static let baseSchema = """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT, request TEXT NOT NULL, state TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0, slots INTEGER NOT NULL DEFAULT 1,
            attempt INTEGER NOT NULL DEFAULT 0, host TEXT,
            failures INTEGER NOT NULL DEFAULT 0, losses INTEGER NOT NULL DEFAULT 0,
            exit_code INTEGER, signal TEXT, reason TEXT,
            submitted_at REAL NOT NULL, started_at REAL, ended_at REAL,
            cancel_requested INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, priority DESC, id);
        CREATE TABLE IF NOT EXISTS attempts (
            job INTEGER NOT NULL REFERENCES jobs(id), attempt INTEGER NOT NULL, host TEXT NOT NULL,
            state TEXT NOT NULL, agent_state TEXT, stale INTEGER NOT NULL DEFAULT 0,
            started_at REAL, ended_at REAL, exit_code INTEGER, signal TEXT, reason TEXT,
            max_rss_bytes INTEGER, cpu_seconds REAL, dispatched_at REAL NOT NULL,
            PRIMARY KEY (job, attempt));
        CREATE INDEX IF NOT EXISTS attempts_host ON attempts(host, state);
        CREATE TABLE IF NOT EXISTS hosts (
            name TEXT PRIMARY KEY, state TEXT NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0,
            slots INTEGER, agent_version TEXT, agent_build TEXT, heartbeat_time REAL, heartbeat_seq INTEGER,
            since REAL NOT NULL, error TEXT);
        CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, kind TEXT NOT NULL,
            job INTEGER, attempt INTEGER, host TEXT, state TEXT, message TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS events_job ON events(job);
        CREATE TABLE IF NOT EXISTS batches (
            name TEXT PRIMARY KEY, fail_fast INTEGER NOT NULL DEFAULT 0, results TEXT NOT NULL, file TEXT,
            submitted_at REAL NOT NULL, finished_at REAL, generation INTEGER NOT NULL DEFAULT 1);
        """

    /// Format 2: columns added after the first release (journals from older builds gain them).
    static let addedColumns: [(table: String, column: String, definition: String)] = [
        ("jobs", "batch", "TEXT"), ("jobs", "batch_job", "TEXT"), ("jobs", "superseded", "INTEGER NOT NULL DEFAULT 0"),
        ("jobs", "not_before", "REAL"), ("jobs", "spec_hash", "TEXT"), ("attempts", "slot", "INTEGER"),
        ("hosts", "machine_id", "TEXT"), ("hosts", "same_machine_as", "TEXT"), ("hosts", "coordinators", "INTEGER"),
    ]
}
