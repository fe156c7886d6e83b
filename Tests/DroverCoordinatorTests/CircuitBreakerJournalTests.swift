import DroverInventory
import DroverProtocol
import Foundation
import Testing
@testable import DroverCoordinator

/// The breaker's verdict (`Journal.breakerCase`) over sequences of attempts written to a real
/// journal, as the coordinator writes them: a black hole fails where the other hosts succeed at
/// the same work; jobs that fail fail everywhere (docs/failures.md, "Black-hole hosts").
@Suite("Circuit breaker on a journal's attempts")
struct CircuitBreakerJournalTests {
    static let settings = QuarantineSettings(failures: 4, within: 600, short: 60, cooldown: 600)
    static let hosts = ["h1", "h2", "h3"]

    /// Attempts end one after another on the hosts; after each end, every host's streak is
    /// judged (more often than the coordinator does, so more chances to trip by mistake).
    final class Sim {
        let state = TempState()
        let journal: Journal
        var clock = 1_000_000.0
        /// The first verdict `.host` on each host.
        var trips: [String: BreakerCase] = [:]
        /// Hosts the rule before this one (any success elsewhere since the newest four failures began) would have quarantined.
        var oldRuleTrips: Set<String> = []

        init() throws { journal = try Journal(state.state) }
        deinit { state.remove() }

        /// A new job of `batch`.
        func job(_ batch: String) throws -> Int {
            let id = try journal.submit(JobRequest(argv: ["sh", "-c", "exit 0"]))
            try journal.db.run("UPDATE jobs SET batch=? WHERE id=?", .text(batch), .int(Int64(id)))
            return id
        }

        /// The job's attempt on `host` ends now with `exit`, after `seconds`.
        func end(_ job: Int, on host: String, exit: Int, seconds: Double = 0.05) throws {
            clock += 0.01
            let n = try journal.attempts(of: job).count + 1
            try journal.db.run("""
                INSERT INTO attempts(job, attempt, host, state, agent_state, exit_code, dispatched_at, started_at, ended_at)
                VALUES (?, ?, ?, 'exited', 'exited', ?, ?, ?, ?)
                """, .int(Int64(job)), .int(Int64(n)), .text(host), .int(Int64(exit)), .double(clock - seconds), .double(clock - seconds), .double(clock))
            for h in CircuitBreakerJournalTests.hosts where trips[h] == nil {
                guard let c = try journal.breakerCase(host: h, otherHosts: 2, settings: CircuitBreakerJournalTests.settings, now: clock) else { continue }
                if c.blame == .host { trips[h] = c }
                let newest = Array(c.evidence.prefix(4))
                let old = try journal.otherHostsOutcomes(than: h, since: CircuitBreaker.streakStart(newest))
                if CircuitBreaker.blame(otherHosts: 2, otherSuccesses: old.successes, otherFailures: old.failures) == .host { oldRuleTrips.insert(h) }
            }
        }

        /// A map of `exits`, its jobs placed round-robin on `order`.
        func map(_ batch: String, _ exits: [Int], on order: [String] = CircuitBreakerJournalTests.hosts) throws {
            for (i, e) in exits.enumerated() { try end(try job(batch), on: order[i % order.count], exit: e) }
        }
    }

    @Test func theStreakNeededGrowsWithHowOftenTheSameWorkFailsElsewhere() {
        let s = Self.settings
        #expect(CircuitBreaker.needed(otherSuccesses: 40, otherFailures: 0, settings: s) == 4, "the others succeed: the minimum")
        #expect(CircuitBreaker.needed(otherSuccesses: 8, otherFailures: 0, settings: s) == 7)
        #expect(CircuitBreaker.needed(otherSuccesses: 1, otherFailures: 0, settings: s) == 13, "one success elsewhere proves little")
        #expect(CircuitBreaker.needed(otherSuccesses: 0, otherFailures: 0, settings: s) == 20, "nothing to compare with")
        #expect(CircuitBreaker.needed(otherSuccesses: 500, otherFailures: 500, settings: s) == 20, "jobs that fail half the time everywhere")
        #expect(CircuitBreaker.needed(otherSuccesses: 1, otherFailures: 70, settings: s) > 64, "more than the history a host is judged by")
        var two = s
        two.failures = 2
        #expect(CircuitBreaker.needed(otherSuccesses: 40, otherFailures: 0, settings: two) == 2)
        #expect(CircuitBreaker.needed(otherSuccesses: 8, otherFailures: 0, settings: two) == 4, "fewer asked, less sure: half as many")
    }

    /// h3 fails four jobs of a small batch at once; before the other hosts prove much, the same
    /// four jobs succeed there when retried: that alone proves h3 at fault.
    @Test func jobsThatFailedOnAHostAndSucceededElsewhereProveIt() throws {
        let sim = try Sim()
        let jobs = try (0..<8).map { _ in try sim.job("bh") }
        for j in jobs.prefix(4) { try sim.end(j, on: "h3", exit: 9, seconds: 0.01) }
        for (i, j) in jobs.suffix(4).enumerated() { try sim.end(j, on: i % 2 == 0 ? "h1" : "h2", exit: 0, seconds: 1) }
        #expect(sim.trips["h3"] == nil, "four successes elsewhere prove little yet")
        for (i, j) in jobs.prefix(3).enumerated() { try sim.end(j, on: i % 2 == 0 ? "h1" : "h2", exit: 0, seconds: 1) }
        #expect(sim.trips["h3"] == nil, "three of its jobs succeeded elsewhere: one short")
        try sim.end(jobs[3], on: "h2", exit: 0, seconds: 1)
        let trip = try #require(sim.trips["h3"])
        #expect(trip.succeededElsewhere == 4 && trip.evidence.count == 4)
        #expect(sim.trips["h1"] == nil && sim.trips["h2"] == nil)
    }

    /// The corpus's sequence that quarantined every host under the old rule: `exit {}` ::: 0 1 2 0
    /// (failures on h2 and h3 while h1 succeeds), then `seq 105 | parallel false`.
    @Test func aMixedMapThenAMapWhoseJobsFailEverywhereQuarantinesNoHost() throws {
        let sim = try Sim()
        try sim.map("exit", [0, 1, 2, 0])
        try sim.map("false", Array(repeating: 1, count: 105))
        #expect(sim.trips.isEmpty, "\(sim.trips.mapValues { $0.evidence.count })")
        #expect(!sim.oldRuleTrips.isEmpty, "the old rule quarantined a host here (the test reproduces the bug)")
    }

    /// The corpus's small maps one after another, one failing job each, h1 drawing every failing
    /// job while the others succeed at the rest: bad luck, not a black hole.
    @Test func smallMapsWhoseFailingJobsAllLandOnOneHostQuarantineNoHost() throws {
        let sim = try Sim()
        try sim.map("halt-soon", [4, 0, 0])
        try sim.map("halt-2", [5, 0])
        try sim.map("joblog", [1, 3, 0, 2], on: ["h1", "h2", "h3", "h1"])
        try sim.map("resume", [1, 0, 0])
        try sim.map("retry-failed", [3, 0, 0])
        #expect(sim.trips.isEmpty, "\(sim.trips.mapValues { $0.evidence.count })")
        #expect(sim.oldRuleTrips.contains("h1"), "the old rule quarantined h1 here")
    }

    /// 900 jobs of which about 30 % fail wherever they run (a pseudo-random, fixed sequence).
    @Test func aLongMapWhoseJobsOftenFailQuarantinesNoHost() throws {
        let sim = try Sim()
        var seed: UInt64 = 0x5eed
        let exits = (0..<900).map { _ in
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (seed >> 33) % 10 < 3 ? 1 : 0
        }
        try sim.map("gz", exits)
        #expect(sim.trips.isEmpty, "\(sim.trips.mapValues { $0.evidence.count })")
    }

    /// h3 lacks the tool: each of its jobs fails at once while h1 and h2 run the same batch's
    /// jobs for 3 s and succeed. It is quarantined after a few waves, h1 and h2 never.
    @Test func aRealBlackHoleIsQuarantined() throws {
        let sim = try Sim()
        var jobs = try (0..<60).map { _ in try sim.job("squares") }
        var waves = 0
        while sim.trips["h3"] == nil, jobs.count >= 12 {
            waves += 1
            for _ in 0..<4 { try sim.end(jobs.removeFirst(), on: "h3", exit: 127, seconds: 0.01) }
            for h in ["h1", "h2"] { for _ in 0..<4 { try sim.end(jobs.removeFirst(), on: h, exit: 0, seconds: 3) } }
        }
        let trip = try #require(sim.trips["h3"], "h3 quarantined")
        #expect(trip.evidence.count >= 4 && trip.evidence.count <= 8, "within two waves: \(trip.evidence.count)")
        #expect(trip.otherFailures == 0 && trip.otherSuccesses > 0)
        #expect(sim.trips["h1"] == nil && sim.trips["h2"] == nil)
        // Also when a batch whose jobs fail everywhere ran on every host just before.
        let after = try Sim()
        try after.map("false", Array(repeating: 1, count: 30))
        var more = try (0..<60).map { _ in try after.job("squares") }
        while after.trips["h3"] == nil, more.count >= 12 {
            for _ in 0..<4 { try after.end(more.removeFirst(), on: "h3", exit: 127, seconds: 0.01) }
            for h in ["h1", "h2"] { for _ in 0..<4 { try after.end(more.removeFirst(), on: h, exit: 0, seconds: 3) } }
        }
        #expect(after.trips["h3"] != nil && after.trips["h1"] == nil && after.trips["h2"] == nil)
    }
}
