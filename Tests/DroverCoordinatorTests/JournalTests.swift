import Foundation
import Testing
@testable import DroverCoordinator

/// A state directory in a fresh temporary folder; `remove()` deletes the folder.
final class TempState {
    let base: String
    let state: StateLocation

    init() {
        base = FileManager.default.temporaryDirectory.appendingPathComponent("drover-journal-\(UUID().uuidString)").path
        // A folder that does not exist yet: the journal creates it (and its parent).
        state = StateLocation(explicit: base + "/state")
    }

    func remove() { try? FileManager.default.removeItem(atPath: base) }

    func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
    }
}

@Suite("Journal")
struct JournalTests {
    @Test func submitAssignsIncreasingIDsAndAuditsEachJob() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        var r = JobRequest(argv: ["echo", "hello world"])
        r.name = "greet"
        let ids = try (0..<3).map { _ in try j.submit(r) }
        #expect(ids == ids.sorted() && Set(ids).count == 3)
        #expect(ids.first! >= 1)
        for id in ids {
            let job = try #require(try j.job(id))
            #expect(job.state == .queued && job.attempt == 0 && job.host == nil && !job.cancelRequested)
            #expect(job.name == "greet")
            let events = try j.events(job: id)
            #expect(events.count == 1)
            #expect(events.first?.kind == "submitted" && events.first?.state == "queued")
            #expect(events.first?.message == "echo 'hello world'")
        }
        // Event ids grow with the jobs.
        let all = try j.events()
        #expect(all.map(\.job) == ids.map(Optional.some))
        #expect(all.map(\.id) == all.map(\.id).sorted())
    }

    @Test func idsAreNeverReused() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let first = try j.submit(JobRequest(argv: ["true"]))
        // Even if the newest row were gone (AUTOINCREMENT), a new job gets a new id.
        try j.db.run("DELETE FROM events WHERE job=?", .int(Int64(first)))
        try j.db.run("DELETE FROM jobs WHERE id=?", .int(Int64(first)))
        let second = try j.submit(JobRequest(argv: ["true"]))
        #expect(second > first)
    }

    @Test func queueOrderIsPriorityThenAge() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        var ids: [Int] = []
        for p in [0, 5, 0, 5, -1] {
            var r = JobRequest(argv: ["true"])
            r.priority = p
            ids.append(try j.submit(r))
        }
        let order = try j.jobs(in: [.queued]).map(\.id)
        #expect(order == [ids[1], ids[3], ids[0], ids[2], ids[4]])
        #expect(try j.jobs(in: [.queued], limit: 2).map(\.id) == [ids[1], ids[3]])
    }

    @Test func requestCancelReturnsOnlyUnfinishedJobsAndIsIdempotent() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        let queued = try j.submit(JobRequest(argv: ["sleep", "1"]))
        let done = try j.submit(JobRequest(argv: ["true"]))
        let running = try j.submit(JobRequest(argv: ["sleep", "2"]))
        try j.db.run("UPDATE jobs SET state='succeeded' WHERE id=?", .int(Int64(done)))
        try j.db.run("UPDATE jobs SET state='running', attempt=1, host='h1' WHERE id=?", .int(Int64(running)))

        #expect(try j.requestCancel([queued, done, running, 9999]) == [queued, running])
        #expect(try j.job(queued)?.cancelRequested == true)
        #expect(try j.job(running)?.cancelRequested == true)
        #expect(try j.job(done)?.cancelRequested == false)
        #expect(try j.job(done)?.state == .succeeded)

        // Again: nothing new is requested and nothing new is written.
        let before = try j.events().count
        #expect(try j.requestCancel([queued, done, running]).isEmpty)
        #expect(try j.events().count == before)
        #expect(try j.events().filter { $0.kind == "cancel_requested" }.compactMap(\.job).sorted() == [queued, running])
        // Requesting does not change the state: the coordinator does that.
        #expect(try j.job(queued)?.state == .queued)
    }

    @Test func resolveByIDAndByName() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        var r = JobRequest(argv: ["./sweep", "3"])
        r.name = "sweep-3"
        let older = try j.submit(r)
        let newer = try j.submit(r)
        var numeric = JobRequest(argv: ["true"])
        numeric.name = "4242"
        let named = try j.submit(numeric)

        #expect(try j.resolve(String(older))?.id == older)
        #expect(try j.resolve("sweep-3")?.id == newer)  // the newest with that name
        #expect(try j.resolve("4242")?.id == named)     // no job 4242: the name
        #expect(try j.resolve("nope") == nil)
        #expect(try j.resolve("") == nil)
        // An id wins over a name that looks like one.
        var confusing = JobRequest(argv: ["true"])
        confusing.name = String(older)
        _ = try j.submit(confusing)
        #expect(try j.resolve(String(older))?.id == older)
    }

    @Test func stateDirectoryAndJournalArePrivate() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        _ = try j.submit(JobRequest(argv: ["true"]))
        #expect(t.state.journalPath == t.base + "/state/journal.db")
        #expect(t.mode(t.state.path) == 0o700)
        #expect(t.mode(t.state.journalPath) == 0o600)
        // The write-ahead log holds the same data: it must be as private.
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: t.state.journalPath + suffix) {
            #expect(t.mode(t.state.journalPath + suffix) == 0o600, "\(suffix)")
        }
        // Reopening keeps the modes and the data.
        let again = try Journal(t.state)
        #expect(t.mode(t.state.journalPath) == 0o600)
        #expect(try again.jobs().count == 1)
    }

    @Test func theJournalIsInWALMode() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        #expect(try j.db.query("PRAGMA journal_mode").first?.string("journal_mode") == "wal")
    }

    @Test func twoConnectionsSeeEachOthersCommits() throws {
        let t = TempState()
        defer { t.remove() }
        // Like a command and the coordinator: two Journal instances on one directory.
        let command = try Journal(t.state)
        let coordinator = try Journal(t.state)
        #expect(try command.coordinatorID() == coordinator.coordinatorID())

        let v0 = try coordinator.db.dataVersion()
        #expect(try coordinator.db.dataVersion() == v0)  // nothing happened: no change
        let id = try command.submit(JobRequest(argv: ["true"]))
        let v1 = try coordinator.db.dataVersion()
        #expect(v1 != v0)
        #expect(try coordinator.job(id)?.state == .queued)

        // And the other way round.
        let c0 = try command.db.dataVersion()
        try coordinator.db.transaction {
            try coordinator.db.run("UPDATE jobs SET state='dispatched', attempt=1, host='h1' WHERE id=?", .int(Int64(id)))
            try coordinator.audit("job", job: id, attempt: 1, host: "h1", state: "dispatched", "dispatched")
        }
        #expect(try command.db.dataVersion() != c0)
        #expect(try command.job(id)?.state == .dispatched)
        #expect(try command.job(id)?.host == "h1")
        #expect(try command.requestCancel([id]) == [id])
        #expect(try coordinator.db.dataVersion() != v1)
        #expect(try coordinator.job(id)?.cancelRequested == true)
    }

    @Test func aRolledBackTransactionLeavesNothing() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try j.db.transaction {
                try j.db.run("INSERT INTO jobs(request, state, submitted_at) VALUES ('{}', 'queued', 0)")
                try j.audit("submitted", "half")
                throw Boom()
            }
        }
        #expect(try j.jobs().isEmpty)
        #expect(try j.events().isEmpty)
        // The connection is usable afterwards.
        #expect(try j.submit(JobRequest(argv: ["true"])) >= 1)
    }

    @Test func aRequestRoundTripsUnchanged() throws {
        let t = TempState()
        defer { t.remove() }
        let j = try Journal(t.state)
        var r = JobRequest(argv: [
            "printf", "%s\\n", "a b", "", "; rm -rf / #", "$(id -u)", "`id`", "$HOME", "'single'", "\"double\"",
            "back\\slash", "*?[a]", "tab\tnew\nline", "\r\u{1B}[31m", "naïve café", "日本語", "🧪🚀", "e\u{301}",
            "\u{0}nul", "\u{7F}\u{80}\u{FFFD}",
        ])
        r.name = "sweep-ü"
        r.labels = ["gpu": "yes", "zone": "né"]
        r.slots = 2
        r.priority = -3
        r.timeout = 5400.25
        r.retries = 2
        r.lostRetries = 0
        r.memoryBytes = 8 << 30
        r.cwd = "/home/ada/wörk dir"
        r.env = ["GREETING": "héllo wörld", "EMPTY": "", "MULTI": "a\nb"]
        let id = try j.submit(r)
        #expect(try j.job(id)?.request == r)
        // Read back through another connection, and found by its non-ASCII name.
        let other = try Journal(t.state)
        let back = try #require(try other.resolve("sweep-ü"))
        #expect(back.id == id)
        #expect(back.request == r)
        #expect(back.request.argv?[18].utf8.count == 4)
        #expect(back.request.argv?[17].unicodeScalars.count == 2)  // not normalised

        var shell = JobRequest(shell: "gp -q < chunk-3.gp > 'out 3.txt' && echo \"$?\"")
        shell.host = "studio"
        let sid = try j.submit(shell)
        #expect(try other.job(sid)?.request == shell)
        #expect(try other.job(sid)?.request.argv == nil)
    }
}
