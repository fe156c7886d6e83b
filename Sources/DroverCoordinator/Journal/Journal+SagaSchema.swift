/// Migration step 5: sagas, approval escalation and the notification outbox.
extension Journal {
    static func addSagasAndNotifications(_ db: SQLiteDatabase) throws {
        let columns: [(table: String, column: String, definition: String)] = [
            // On a compensation job: the job it compensates. On a job: its compensation's state and job.
            ("jobs", "compensates", "INTEGER"), ("jobs", "compensation", "TEXT"), ("jobs", "compensation_job", "INTEGER"),
            // On an approval gate: 'escalated' once escalate_after passed, 'timed_out' once its timeout did.
            ("jobs", "escalation", "TEXT"),
            // The batch policy compensate-on-failure; the saga's state (compensating, compensated, stopped); notify targets (JSON).
            ("batches", "compensate", "INTEGER NOT NULL DEFAULT 0"), ("batches", "saga", "TEXT"), ("batches", "notify", "TEXT"),
        ]
        for (table, column, definition) in columns {
            let have = try db.query("PRAGMA table_info(\(table))").contains { $0.string("name") == column }
            if !have { try db.execute("ALTER TABLE \(table) ADD COLUMN \(column) \(definition)") }
        }
        try db.execute("""
            CREATE INDEX IF NOT EXISTS jobs_compensates ON jobs(compensates);
            CREATE TABLE IF NOT EXISTS notifications (
                id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, event TEXT NOT NULL, payload TEXT NOT NULL,
                target TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,
                state TEXT NOT NULL DEFAULT 'pending', last_error TEXT, delivered_at REAL);
            CREATE INDEX IF NOT EXISTS notifications_due ON notifications(state, next_at);
            """)
    }
}
