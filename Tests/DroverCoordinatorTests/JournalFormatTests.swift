import Foundation
import Testing
import DroverInventory
@testable import DroverCoordinator

/// Prepared statements, savepoints, the format check and the migration steps.
@Suite("Journal format")
struct JournalFormatTests {
    @Test func theStatementCacheStaysFlatAcrossSchedulingRounds() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let ids = try (0..<5).map { _ in try j.submit(JobRequest(argv: ["true"])) }
        // One round as the scheduler and the followers do it, at a new time each round.
        func round(_ n: Int) throws {
            let now = Date().timeIntervalSince1970 + Double(n) * 0.001
            _ = try j.jobs(in: [.queued], readyAt: now, limit: 256)
            _ = try j.events(after: n, jobs: Array(ids.prefix(1 + n % ids.count)))
            _ = try j.job(ids[n % ids.count])
            _ = try j.hosts()
            // Once per ended attempt (the breaker, retries): a different list of jobs each time.
            _ = try j.failedHosts(of: [ids[n % ids.count], 1000 + n])
            _ = try j.breakerHistory(host: "h\(n % 3)", since: 0, settings: QuarantineSettings())
        }
        try round(0)
        let after = j.db.cachedStatements
        for n in 1...200 { try round(n) }
        #expect(j.db.cachedStatements == after, "\(j.db.cachedStatements - after) statements more after 200 rounds")
    }

    @Test func failedHostsNamesTheHostsWhereEachJobFailed() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let a = try j.submit(JobRequest(argv: ["false"]))
        let b = try j.submit(JobRequest(argv: ["false"]))
        for (job, n, host, code) in [(a, 1, "h1", 1), (a, 2, "h2", 0), (b, 1, "h3", 2), (b, 2, "h1", 1)] {
            try j.db.run("INSERT INTO attempts (job, attempt, host, state, agent_state, exit_code, dispatched_at) VALUES (?, ?, ?, 'exited', 'exited', ?, 0)",
                         .int(Int64(job)), .int(Int64(n)), .text(host), .int(Int64(code)))
        }
        #expect(try j.failedHosts(of: [a, b]) == [a: ["h1"], b: ["h3", "h1"]])
        #expect(try j.failedHosts(of: [b]) == [b: ["h3", "h1"]])
        #expect(try j.failedHosts(of: [4711]).isEmpty)
    }

    @Test func theStatementCacheKeepsTheMostRecentlyUsedWithinItsLimit() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let limit = SQLiteDatabase.statementLimit
        // SQL text that names a value: a new statement each time, as ids in the text did.
        for n in 0..<(limit * 3) {
            let rows = try j.db.query("SELECT \(n) AS n")
            #expect(rows.first?.int("n") == n)
            // A statement used all along stays cached, and right.
            #expect(try j.db.query("SELECT count(*) AS c FROM jobs").first?.int("c") == 0)
        }
        #expect(j.db.cachedStatements <= limit)
        // SQLite counts what it holds (the coordinator records it beside its heap; the soak
        // judges the two apart).
        #expect(SQLiteDatabase.memoryInUse > 0, "sqlite3_memory_used says 0: SQLite keeps no memory statistics here")
        let before = j.db.cachedStatements
        _ = try j.db.query("SELECT count(*) AS c FROM jobs")
        #expect(j.db.cachedStatements == before, "the statement used all along was evicted")
    }

    @Test func readyAtStillFiltersRetriesInBackOff() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let now = Date().timeIntervalSince1970
        let a = try j.submit(JobRequest(argv: ["true"]))
        let b = try j.submit(JobRequest(argv: ["true"]))
        try j.db.run("UPDATE jobs SET not_before=? WHERE id=?", .double(now + 60), .int(Int64(b)))
        #expect(try j.jobs(in: [.queued], readyAt: now).map(\.id) == [a])
        #expect(try j.jobs(in: [.queued], readyAt: now + 61).map(\.id) == [a, b])
        #expect(try j.jobs(in: [.queued]).map(\.id) == [a, b])
    }

    @Test func eventsOfSomeJobsAreThoseJobsOnly() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let ids = try (0..<3).map { _ in try j.submit(JobRequest(argv: ["true"])) }
        #expect(try j.events(jobs: [ids[0], ids[2]]).map(\.job) == [ids[0], ids[2]])
        #expect(try j.events(jobs: []).isEmpty)
    }

    @Test func aNestedTransactionThatFailsUndoesOnlyItsOwnWrites() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        struct Boom: Error {}
        let (outer, inner, after) = try j.db.transaction { () throws -> (Int, Int?, Int) in
            let outer = try j.insert(JobRequest(argv: ["outer"]))
            var inner: Int?
            do {
                try j.db.transaction {
                    inner = try j.insert(JobRequest(argv: ["inner"]))
                    throw Boom()
                }
            } catch is Boom {}
            #expect(j.db.inTransaction)
            // Nesting succeeds too, and commits with the outer transaction.
            let after = try j.db.transaction { try j.insert(JobRequest(argv: ["after"])) }
            return (outer, inner, after)
        }
        #expect(!j.db.inTransaction)
        #expect(try j.job(outer) != nil)
        #expect(try j.job(after) != nil)
        #expect(inner != nil)
        // The inner job and its audit event are gone (its id was free again for `after`).
        #expect(try j.jobs().map(\.request.argv) == [["outer"], ["after"]])
        #expect(try j.events().map(\.message) == ["outer", "after"])
    }

    @Test func everyRollbackIsCounted() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        struct Boom: Error {}
        #expect(j.db.rollbacks == 0)
        _ = try j.db.transaction { try j.insert(JobRequest(argv: ["committed"])) }
        #expect(j.db.rollbacks == 0)
        #expect(throws: Boom.self) { try j.db.transaction { throw Boom() } }
        #expect(j.db.rollbacks == 1)
        try j.db.transaction {
            do { try j.db.transaction { throw Boom() } } catch is Boom {}
        }
        #expect(j.db.rollbacks == 2, "a savepoint rolled back counts too")
    }

    /// What waits for a commit (a log line saying a host was released) happens only once the
    /// writes are durable: never for a rollback, and a savepoint's rollback drops only its own.
    @Test func actionsAfterCommitRunOnlyForWritesThatCommitted() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        struct Boom: Error {}
        var ran: [String] = []
        j.db.afterCommit { ran.append("outside") }
        #expect(ran == ["outside"], "outside a transaction it runs at once")
        try j.db.transaction {
            j.db.afterCommit { ran.append("outer") }
            try j.db.transaction { j.db.afterCommit { ran.append("kept savepoint") } }
            do {
                try j.db.transaction {
                    j.db.afterCommit { ran.append("undone savepoint") }
                    throw Boom()
                }
            } catch is Boom {}
            #expect(ran == ["outside"], "nothing runs before the commit")
        }
        #expect(ran == ["outside", "outer", "kept savepoint"])
        #expect(throws: Boom.self) {
            try j.db.transaction {
                j.db.afterCommit { ran.append("rolled back") }
                try j.db.transaction { j.db.afterCommit { ran.append("inside rolled back") } }
                throw Boom()
            }
        }
        #expect(ran == ["outside", "outer", "kept savepoint"], "a rollback drops what waited for it")
    }

    @Test func anOuterFailureUndoesTheNestedPartsToo() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try j.db.transaction {
                _ = try j.db.transaction { try j.insert(JobRequest(argv: ["inner"])) }
                throw Boom()
            }
        }
        #expect(try j.jobs().isEmpty)
    }

    @Test func aJournalFromANewerDroverIsRefusedWithOneClearMessage() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        _ = try j.submit(JobRequest(argv: ["true"]))
        try j.db.execute("PRAGMA user_version = \(Journal.format + 7)")
        let error = try #require(throws: JournalFormatError.self) { try Journal(t.state) }
        #expect(error.found == Journal.format + 7 && error.known == Journal.format)
        #expect(error.description.contains(t.state.journalPath))
        #expect(error.description.contains("format \(Journal.format + 7)") && error.description.contains("up to \(Journal.format)"))
        #expect(error.description.contains("newer drover") && error.description.contains("--state"))
        // Nothing was changed: the newer format is still recorded.
        #expect(try SQLiteMigrator.version(of: j.db) == Journal.format + 7)
    }

    @Test func aNewerFormatInMetaIsRefusedToo() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        #expect(try j.meta("format") == String(Journal.format))
        try j.setMeta("format", String(Journal.format + 1))
        #expect(throws: JournalFormatError.self) { try Journal(t.state) }
    }

    @Test func aJournalFromBeforeTheMigratorIsUpgradedInSteps() throws {
        let t = TempState()
        defer { t.remove() }
        try t.state.prepare()
        // As the first release wrote it: the base tables, user_version 0, meta format 1.
        do {
            let old = try SQLiteDatabase(path: t.state.journalPath)
            try old.execute(Journal.baseSchema)
            try old.run("INSERT INTO meta(key, value) VALUES ('coordinator_id', 'abcd1234'), ('epoch', '3'), ('format', '1')")
            try old.run("INSERT INTO jobs(request, state, submitted_at) VALUES (?, 'succeeded', 1)", .text(#"{"argv":["true"]}"#))
        }
        let j = try Journal(t.state)
        #expect(try SQLiteMigrator.version(of: j.db) == Journal.format)
        #expect(try j.meta("format") == String(Journal.format))
        #expect(try j.coordinatorID() == "abcd1234")
        #expect(try j.meta("epoch") == "3")
        let columns = try j.db.query("PRAGMA table_info(jobs)").compactMap { $0.string("name") }
        #expect(columns.contains("batch") && columns.contains("not_before"))
        #expect(try j.db.query("SELECT COUNT(*) AS n FROM jobs").first?.int("n") == 1)
        // Opening again runs nothing.
        #expect(try Journal.migrator.migrate(j.db).isEmpty)
    }

    @Test func stepsRunOnceInOrderAndAFailedStepLeavesTheOneBefore() throws {
        let t = TempState()
        defer { t.remove() }
        try t.state.prepare()
        let db = try SQLiteDatabase(path: t.state.journalPath)
        var m = SQLiteMigrator()
        m.register(1, "a table") { try $0.execute("CREATE TABLE a (x INTEGER)") }
        m.register(2, "a row") { try $0.run("INSERT INTO a VALUES (2)") }
        #expect(try m.migrate(db, upTo: 1) == [1])
        #expect(try m.migrate(db) == [2])
        #expect(try m.migrate(db) == [])
        #expect(try db.query("SELECT x FROM a").map { $0.int("x") } == [2])

        m.register(3, "a broken step") { db in
            try db.run("INSERT INTO a VALUES (3)")
            try db.execute("ALTER TABLE nowhere ADD COLUMN y")
        }
        let error = try #require(throws: MigrationError.self) { try m.migrate(db) }
        #expect(error.version == 3 && error.description.contains("a broken step"))
        #expect(try SQLiteMigrator.version(of: db) == 2)
        #expect(try db.query("SELECT x FROM a").map { $0.int("x") } == [2], "the failed step's insert was kept")
    }
}
