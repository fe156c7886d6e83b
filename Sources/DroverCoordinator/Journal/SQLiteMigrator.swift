/// Brings a database to the newest format in numbered steps (the idea of GRDB's
/// `DatabaseMigrator`): each step runs once, in its own transaction that also records its
/// number in `PRAGMA user_version`, so a crash between steps leaves a database at a known step
/// and two processes opening it at once apply each step once.
public struct SQLiteMigrator: Sendable {
    /// One numbered change of the format.
    public struct Step: Sendable {
        public let version: Int
        public let summary: String
        let apply: @Sendable (SQLiteDatabase) throws -> Void
    }

    public private(set) var steps: [Step] = []
    /// Runs inside each step's transaction after the step (to record the version elsewhere too).
    var afterStep: (@Sendable (SQLiteDatabase, Int) throws -> Void)?

    public init() {}

    /// The newest format: the last step's number (0 without steps).
    public var latest: Int { steps.last?.version ?? 0 }

    /// Adds step `version`, which must be the next number after the last one.
    public mutating func register(_ version: Int, _ summary: String, _ apply: @escaping @Sendable (SQLiteDatabase) throws -> Void) {
        precondition(version == latest + 1, "migration steps are numbered 1, 2, 3…: \(version) after \(latest)")
        steps.append(Step(version: version, summary: summary, apply: apply))
    }

    /// The format recorded in the database (`PRAGMA user_version`; 0 for a new one).
    public static func version(of db: SQLiteDatabase) throws -> Int {
        Int(try db.query("PRAGMA user_version").first?.int(0) ?? 0)
    }

    /// Runs the steps the database lacks, up to `target` (default: all); returns their
    /// numbers. Refuses (`JournalFormatError`) a database whose format is newer than `latest`.
    @discardableResult
    public func migrate(_ db: SQLiteDatabase, upTo target: Int? = nil) throws -> [Int] {
        let target = min(target ?? latest, latest)
        var current = try Self.version(of: db)
        if current > latest { throw JournalFormatError(path: db.path, found: current, known: latest) }
        var applied: [Int] = []
        for step in steps where step.version > current && step.version <= target {
            let ran = try db.transaction { () throws -> Bool in
                // Again under the write lock: another process may have run it meanwhile.
                let now = try Self.version(of: db)
                if now > latest { throw JournalFormatError(path: db.path, found: now, known: latest) }
                guard now < step.version else { return false }
                do { try step.apply(db) } catch {
                    throw MigrationError(path: db.path, version: step.version, summary: step.summary, underlying: "\(error)")
                }
                try afterStep?(db, step.version)
                // A pragma takes no parameter; the number is one of ours, not outside data.
                try db.execute("PRAGMA user_version = \(step.version)")
                return true
            }
            if ran { applied.append(step.version) }
            current = step.version
        }
        return applied
    }
}

/// The journal was written by a newer `drover`, whose format this one does not know.
public struct JournalFormatError: Error, Sendable, CustomStringConvertible {
    public var path: String
    /// The format recorded in the file.
    public var found: Int
    /// The newest format this build knows.
    public var known: Int

    public var description: String {
        "the journal \(path) has format \(found), but this drover knows formats up to \(known): it was written by a newer drover. "
            + "Use that drover (upgrade this one), or another state directory (--state); nothing in the journal was changed"
    }
}

/// A migration step failed; its transaction was rolled back, so the journal stays at the step before.
public struct MigrationError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var version: Int
    public var summary: String
    public var underlying: String

    public var description: String {
        "upgrading the journal \(path) to format \(version) (\(summary)) failed: \(underlying); the journal is unchanged at format \(version - 1)"
    }
}
