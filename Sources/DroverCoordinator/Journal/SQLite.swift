import CSQLite
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DroverCore

/// A failed SQLite call: what was attempted, on which database file, and SQLite's message.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    /// SQLite's primary result code (`SQLITE_BUSY`, `SQLITE_FULL`, …).
    public var code: Int32
    public var operation: String
    public var path: String
    public var message: String

    public var description: String {
        var text = "\(operation) in \(path): \(message)"
        switch code {
        case SQLITE_FULL: text += " — the disk is full; free space and run the command again (nothing was changed)"
        case SQLITE_BUSY, SQLITE_LOCKED: text += " — another drover process held the database too long; try again"
        case SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM: text += " — check that the state directory is yours and writable"
        default: break
        }
        return text
    }
}

/// A value bound to or read from a statement.
public enum SQLValue: Sendable, Equatable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
}

/// One SQLite connection. Not thread-safe: its owner (an actor, or one command) uses it alone.
public final class SQLiteDatabase {
    private var handle: OpaquePointer?
    /// Prepared statements by SQL text, each with when it was last used (`uses`).
    private var cache: [String: (statement: OpaquePointer, used: Int)] = [:]
    /// Statements prepared or reused so far: the clock of `cache`'s least-recently-used order.
    private var uses = 0
    public let path: String
    /// Queries run on this connection so far (`query`, pragmas included): how often a
    /// reader looked, for tests that check a follower sleeps between commits.
    public private(set) var queries = 0
    /// Nesting depth of `transaction` inside the outermost one (names its savepoints).
    private var savepoints = 0
    /// What `afterCommit` deferred, one list per open `transaction` level (outermost first).
    private var commitActions: [[() -> Void]] = []

    /// Prepared statements kept for reuse: one per distinct SQL text, so it stays flat
    /// when values are bound as parameters and would grow when they are put in the text.
    public var cachedStatements: Int { cache.count }

    /// At most this many prepared statements are kept (the least recently used go first): a
    /// statement holds ~3 KiB of SQLite's memory, and SQL text that names values (an id
    /// list put in the text) would otherwise keep one per distinct text for the
    /// connection's life — the coordinator's heap grew ~3 KiB per job that way. The
    /// journal binds its values (`Journal.idList`); this bound is the safety net.
    public static let statementLimit = 200

    /// Bytes SQLite holds in this process, every connection together (page caches, prepared
    /// statements, schemas): bounded by each connection's page cache (`cache_size`, 2 MB by
    /// default) and `statementLimit`.
    public static var memoryInUse: Int { Int(sqlite3_memory_used()) }

    /// Opens (creating when `create`) the database at `path` in WAL mode.
    public init(path: String, create: Bool = true, readOnly: Bool = false) throws(SQLiteError) {
        self.path = path
        var flags = readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE
        if create && !readOnly { flags |= SQLITE_OPEN_CREATE }
        flags |= SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        if rc != SQLITE_OK {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(handle)
            handle = nil
            throw SQLiteError(code: rc & 0xff, operation: "open the journal", path: path, message: message)
        }
        sqlite3_busy_timeout(handle, 10_000)
        if !readOnly {
            // WAL: readers never block the coordinator; NORMAL sync in WAL mode loses nothing
            // when a process is killed (only a power loss can drop the last transactions).
            try execute("PRAGMA journal_mode=WAL")
            try execute("PRAGMA synchronous=NORMAL")
        }
        try execute("PRAGMA foreign_keys=ON")
    }

    deinit {
        for (_, entry) in cache { sqlite3_finalize(entry.statement) }
        sqlite3_close_v2(handle)
        free(ringPath)
    }

    /// The file `ringAfterCommits` touches (owned here: the hook reads it).
    private var ringPath: UnsafeMutablePointer<CChar>?

    /// After each commit on this connection, touches `path` (sets its times: one system
    /// call; nothing when it does not exist), so that a coordinator watching that file wakes
    /// for another process's commits without watching the WAL, which its own commits write
    /// too. A WAL hook replaces SQLite's automatic checkpoint, so the hook does that as well
    /// (a passive checkpoint once the WAL holds 1,000 pages, as the default). Nil removes it.
    public func ringAfterCommits(_ path: String?) {
        free(ringPath)
        ringPath = path.map { strdup($0) }
        guard ringPath != nil else {
            sqlite3_wal_hook(handle, nil, nil)
            sqlite3_wal_autocheckpoint(handle, 1000)
            return
        }
        sqlite3_wal_hook(handle, { context, db, name, pages in
            if let context { _ = utimensat(AT_FDCWD, context.assumingMemoryBound(to: CChar.self), nil, 0) }
            if pages >= 1000 { _ = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nil, nil) }
            return SQLITE_OK
        }, ringPath)
    }

    private func error(_ rc: Int32, _ operation: String) -> SQLiteError {
        SQLiteError(code: rc & 0xff, operation: operation, path: path, message: String(cString: sqlite3_errmsg(handle)))
    }

    /// Runs one or more statements that return no rows.
    public func execute(_ sql: String) throws(SQLiteError) {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(message)
            throw SQLiteError(code: rc & 0xff, operation: "run `\(sql.prefix(60))`", path: path, message: text)
        }
    }

    private func statement(_ sql: String) throws(SQLiteError) -> OpaquePointer {
        uses += 1
        if let s = cache[sql]?.statement {
            cache[sql]?.used = uses
            sqlite3_reset(s)
            sqlite3_clear_bindings(s)
            return s
        }
        var s: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &s, nil)
        guard rc == SQLITE_OK, let s else { throw error(rc, "prepare `\(sql.prefix(60))`") }
        // Every statement is stepped to its end and reset before `run`/`query` return, so
        // none is in use here and the least recently used may go.
        if cache.count >= Self.statementLimit, let oldest = cache.min(by: { $0.value.used < $1.value.used }) {
            sqlite3_finalize(oldest.value.statement)
            cache[oldest.key] = nil
        }
        cache[sql] = (s, uses)
        return s
    }

    private func bind(_ s: OpaquePointer, _ values: [SQLValue]) {
        for (i, v) in values.enumerated() {
            let index = Int32(i + 1)
            switch v {
            case .null: sqlite3_bind_null(s, index)
            case .int(let n): sqlite3_bind_int64(s, index, n)
            case .double(let d): sqlite3_bind_double(s, index, d)
            case .text(let t): sqlite3_bind_text(s, index, t, -1, sqliteTransient)
            }
        }
    }

    /// Runs a statement with parameters; returns the number of rows changed.
    @discardableResult
    public func run(_ sql: String, _ values: SQLValue...) throws(SQLiteError) -> Int {
        try run(sql, values)
    }

    /// Runs a statement with parameters; returns the number of rows changed.
    @discardableResult
    public func run(_ sql: String, _ values: [SQLValue]) throws(SQLiteError) -> Int {
        let s = try statement(sql)
        bind(s, values)
        defer { sqlite3_reset(s) }
        var rc = sqlite3_step(s)
        while rc == SQLITE_ROW { rc = sqlite3_step(s) }
        guard rc == SQLITE_DONE else { throw error(rc, "run `\(sql.prefix(60))`") }
        return Int(sqlite3_changes(handle))
    }

    /// The rowid of the last insert on this connection.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Runs a query and returns its rows.
    public func query(_ sql: String, _ values: SQLValue...) throws(SQLiteError) -> [SQLRow] {
        try query(sql, values)
    }

    /// Runs a query and returns its rows.
    public func query(_ sql: String, _ values: [SQLValue]) throws(SQLiteError) -> [SQLRow] {
        queries += 1
        let s = try statement(sql)
        bind(s, values)
        defer { sqlite3_reset(s) }
        var rows: [SQLRow] = []
        let count = sqlite3_column_count(s)
        var names: [String] = []
        for i in 0..<count { names.append(String(cString: sqlite3_column_name(s, i))) }
        while true {
            let rc = sqlite3_step(s)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw error(rc, "query `\(sql.prefix(60))`") }
            var values: [SQLValue] = []
            values.reserveCapacity(Int(count))
            for i in 0..<count {
                switch sqlite3_column_type(s, i) {
                case SQLITE_INTEGER: values.append(.int(sqlite3_column_int64(s, i)))
                case SQLITE_FLOAT: values.append(.double(sqlite3_column_double(s, i)))
                case SQLITE_NULL: values.append(.null)
                default:
                    if let p = sqlite3_column_text(s, i) {
                        values.append(.text(String(cString: p)))
                    } else {
                        values.append(.null)
                    }
                }
            }
            rows.append(SQLRow(names: names, values: values))
        }
        return rows
    }

    /// Whether a transaction is open on this connection.
    public var inTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// How many transactions and savepoints rolled back on this connection: a caller that keeps
    /// a copy of journal state in memory, changed inside transactions, compares it to know when
    /// that copy may hold changes the journal does not (and must be read again).
    public private(set) var rollbacks = 0

    /// Runs `body` in one transaction (BEGIN IMMEDIATE): all of it is written, or none.
    /// Inside another transaction it is a SAVEPOINT: when `body` throws, only its own
    /// writes are undone, and the error reaches the outer body, which may catch it and go on.
    public func transaction<R>(_ body: () throws -> R) throws -> R {
        guard inTransaction else {
            try execute("BEGIN IMMEDIATE")
            commitActions = [[]]
            do {
                let r = try body()
                try execute("COMMIT")
                let actions = commitActions.first ?? []
                commitActions = []
                for action in actions { action() }
                return r
            } catch {
                try? execute("ROLLBACK")
                commitActions = []
                rollbacks += 1
                throw error
            }
        }
        savepoints += 1
        defer { savepoints -= 1 }
        let name = "drover_\(savepoints)"
        try execute("SAVEPOINT \(name)")
        commitActions.append([])
        do {
            let r = try body()
            try execute("RELEASE \(name)")
            // Its actions now wait for the outer transaction's commit (run now inside a
            // transaction not begun here, as `afterCommit` does).
            let mine = commitActions.popLast() ?? []
            if commitActions.isEmpty { for action in mine { action() } } else { commitActions[commitActions.count - 1] += mine }
            return r
        } catch {
            // Undo this level's writes, then drop the savepoint; the outer transaction goes on.
            try? execute("ROLLBACK TO \(name)")
            try? execute("RELEASE \(name)")
            _ = commitActions.popLast()
            rollbacks += 1
            throw error
        }
    }

    /// Runs `action` once the writes made so far are committed: at the end of the outermost
    /// `transaction`, or now outside one. Dropped when the writes roll back (the transaction, or
    /// the savepoint that was innermost when it was called). For what must not claim a change
    /// the journal may yet lose, such as a log line.
    public func afterCommit(_ action: @escaping () -> Void) {
        guard inTransaction, !commitActions.isEmpty else { return action() }
        commitActions[commitActions.count - 1].append(action)
    }

    /// Changes whenever another connection commits (cheap: no disk access).
    public func dataVersion() throws(SQLiteError) -> Int64 {
        try query("PRAGMA data_version").first?.int(0) ?? 0
    }
}

/// `SQLITE_TRANSIENT`: SQLite copies the bound text.
private let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One result row, read by column name or index.
public struct SQLRow: Sendable {
    let names: [String]
    public let values: [SQLValue]

    private func value(_ column: String) -> SQLValue {
        guard let i = names.firstIndex(of: column) else { return .null }
        return values[i]
    }

    public func int(_ i: Int) -> Int64? {
        if case .int(let n) = values[i] { return n }
        return nil
    }

    public func string(_ column: String) -> String? {
        switch value(column) {
        case .text(let t): return t
        case .int(let n): return String(n)
        case .double(let d): return String(d)
        case .null: return nil
        }
    }

    public func int(_ column: String) -> Int? {
        switch value(column) {
        case .int(let n): return Int(n)
        case .double(let d): return Int(d)
        case .text(let t): return Int(t)
        case .null: return nil
        }
    }

    public func double(_ column: String) -> Double? {
        switch value(column) {
        case .int(let n): return Double(n)
        case .double(let d): return d
        case .text(let t): return Double(t)
        case .null: return nil
        }
    }
}

extension SQLValue {
    /// `.text` or `.null`.
    public static func from(_ s: String?) -> SQLValue { s.map { .text($0) } ?? .null }
    /// `.int` or `.null`.
    public static func from(_ n: Int?) -> SQLValue { n.map { .int(Int64($0)) } ?? .null }
    /// `.double` or `.null`.
    public static func from(_ d: Double?) -> SQLValue { d.map { .double($0) } ?? .null }
}
