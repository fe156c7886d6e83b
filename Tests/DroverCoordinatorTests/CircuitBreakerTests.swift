import DroverInventory
import Testing
@testable import DroverCoordinator

/// The per-host circuit breaker's rules (docs/failures.md, "Black-hole hosts"), and the
/// scheduler's part: retries prefer other hosts, a half-open host takes one probe.
@Suite("Circuit breaker")
struct CircuitBreakerTests {
    let settings = QuarantineSettings(failures: 4, within: 600, short: 60, cooldown: 600)
    let now = 10_000.0

    /// A quick exit 127 of `job`, `ago` seconds before `now`.
    func fail(_ job: Int, ago: Double, state: String = "exited", exit: Int? = 127, seconds: Double = 0.2,
              elsewhere: BreakerAttempt.Elsewhere = .nowhere) -> BreakerAttempt {
        BreakerAttempt(job: job, attempt: 1, state: state, exitCode: exit, seconds: seconds, endedAt: now - ago,
                       stderrHead: "sh: 1: gp: not found\n", elsewhere: elsewhere)
    }

    @Test func fourDifferentQuickFailuresInARowTripIt() throws {
        let history = [fail(4, ago: 1), fail(3, ago: 2), fail(2, ago: 3), fail(1, ago: 4)]
        let evidence = try #require(CircuitBreaker.evidence(history, settings: settings, now: now))
        #expect(evidence.map(\.job) == [4, 3, 2, 1])
        #expect(CircuitBreaker.evidence(Array(history.prefix(3)), settings: settings, now: now) == nil, "three are below the threshold")
        let text = CircuitBreaker.describe(evidence, label: { "b/\($0)" })
        #expect(text.contains("job b/4 attempt 1 exit 127 after 0.2 s: sh: 1: gp: not found"), "\(text)")
    }

    @Test func theSameJobFailingTwiceCountsOnce() {
        let history = [fail(3, ago: 1), fail(3, ago: 2), fail(2, ago: 3), fail(1, ago: 4)]
        #expect(CircuitBreaker.evidence(history, settings: settings, now: now) == nil)
    }

    @Test func aSuccessOrALongFailureEndsTheStreak() {
        let success = BreakerAttempt(job: 9, attempt: 1, state: "exited", exitCode: 0, seconds: 5, endedAt: now - 2.5)
        #expect(CircuitBreaker.evidence([fail(4, ago: 1), fail(3, ago: 2), success, fail(2, ago: 3), fail(1, ago: 4)], settings: settings, now: now) == nil)
        let long = fail(8, ago: 2.5, seconds: 61)
        #expect(CircuitBreaker.verdict(long, settings: settings) == .ranLong)
        #expect(CircuitBreaker.evidence([fail(4, ago: 1), fail(3, ago: 2), long, fail(2, ago: 3), fail(1, ago: 4)], settings: settings, now: now) == nil)
    }

    @Test func cancelsTimeoutsLossesAndJobsThatFailEverywhereAreIgnored() throws {
        let noise = [
            fail(10, ago: 1.1, state: "cancelled", exit: nil), fail(11, ago: 1.2, state: "timed_out", exit: nil),
            fail(12, ago: 1.3, state: "lost", exit: nil), fail(13, ago: 1.4, state: "orphaned", exit: nil),
            fail(14, ago: 1.5, state: "resource_limit", exit: nil), fail(15, ago: 1.6, elsewhere: .failedEverywhere),
        ]
        for a in noise { #expect(CircuitBreaker.verdict(a, settings: settings) == .ignored, "\(a.state)") }
        // Ignored attempts neither count nor break the streak.
        let history = [fail(4, ago: 1)] + noise + [fail(3, ago: 2), fail(2, ago: 3)]
        #expect(CircuitBreaker.evidence(history, settings: settings, now: now) == nil)
        let evidence = try #require(CircuitBreaker.evidence(history + [fail(1, ago: 4)], settings: settings, now: now))
        #expect(evidence.map(\.job) == [4, 3, 2, 1])
        // A job that failed on another host but also succeeded somewhere counts; one that only failed elsewhere does not.
        let others = [BreakerAttempt(job: 1, attempt: 2, state: "exited", exitCode: 1, seconds: 0, endedAt: 0)]
        #expect(CircuitBreaker.elsewhere(others, settings: settings) == .failedEverywhere)
        let healed = others + [BreakerAttempt(job: 1, attempt: 3, state: "exited", exitCode: 0, seconds: 0, endedAt: 0)]
        #expect(CircuitBreaker.elsewhere(healed, settings: settings) == .notFailing)
        #expect(CircuitBreaker.elsewhere([], settings: settings) == .nowhere)
    }

    @Test func signalsAndFailedStartsCount() {
        #expect(CircuitBreaker.verdict(fail(1, ago: 1, state: "signaled", exit: nil), settings: settings) == .counts)
        #expect(CircuitBreaker.verdict(fail(1, ago: 1, state: "start_failed", exit: nil), settings: settings) == .counts)
    }

    @Test func onlyFailuresWithinTheWindowAndAfterTheResetCount() {
        let history = [fail(4, ago: 1), fail(3, ago: 2), fail(2, ago: 3), fail(1, ago: 601)]
        #expect(CircuitBreaker.evidence(history, settings: settings, now: now) == nil, "job 1 ended more than 10 min ago")
        let recent = [fail(4, ago: 1), fail(3, ago: 2), fail(2, ago: 3), fail(1, ago: 4)]
        #expect(CircuitBreaker.evidence(recent, settings: settings, now: now, since: now - 3.5) == nil, "job 1 ended before the release")
        var two = settings
        two.failures = 2
        #expect(CircuitBreaker.evidence(recent, settings: two, now: now)?.count == 4, "the whole streak, at least two")
    }

    @Test func failuresOnEveryHostAreTheJobsFaultAndALoneHostIsNeverQuarantined() {
        #expect(CircuitBreaker.jobsAtFault(otherHosts: 2, otherSuccesses: 0, otherFailures: 5), "a batch that fails everywhere")
        #expect(!CircuitBreaker.jobsAtFault(otherHosts: 2, otherSuccesses: 1, otherFailures: 5), "other hosts succeed")
        #expect(!CircuitBreaker.jobsAtFault(otherHosts: 2, otherSuccesses: 0, otherFailures: 0), "the other hosts' jobs still run")
        #expect(CircuitBreaker.jobsAtFault(otherHosts: 0, otherSuccesses: 0, otherFailures: 0), "the only host")
        #expect(CircuitBreaker.jobsAtFault(otherHosts: 2, otherSuccesses: 0, otherFailures: 0, otherYoung: 3),
                "the other hosts' jobs started just now and may fail as fast: not judged yet")
        #expect(!CircuitBreaker.jobsAtFault(otherHosts: 2, otherSuccesses: 1, otherFailures: 0, otherYoung: 3), "other hosts succeed")
        #expect(CircuitBreaker.blame(otherHosts: 2, otherSuccesses: 0, otherFailures: 0, otherYoung: 3) == .undecided)
        #expect(CircuitBreaker.blame(otherHosts: 2, otherSuccesses: 0, otherFailures: 2, otherYoung: 3) == .jobs)
    }

    @Test func eachFailedProbeDoublesTheCoolDownUpToADay() {
        #expect(CircuitBreaker.doubled(600) == 1200)
        #expect(CircuitBreaker.doubled(1200) == 2400)
        #expect(CircuitBreaker.doubled(60_000) == 86_400)
    }

    @Test func aHalfOpenHostTakesOneProbeAndAQuarantinedOneNone() {
        let q = QuarantineRecord(host: "h3", state: .open, since: 0, until: 100, cooldown: 100)
        #expect(!q.halfOpen(at: 99) && q.halfOpen(at: 100))
        #expect(!QuarantineRecord(host: "h3", state: .manual, since: 0).halfOpen(at: 1e12), "a manual quarantine never probes")
        let hosts = [SchedulerHost(name: "h3", slots: 4, used: 0, limit: 1), SchedulerHost(name: "h1", slots: 1, used: 1)]
        let placed = Scheduler.place((1...3).map { SchedulerJob(id: $0) }, on: hosts)
        #expect(placed == [.init(job: 1, host: "h3")], "one probe, although h3 has four free slots")
        let closed = [SchedulerHost(name: "h3", slots: 4, used: 0, limit: 0), SchedulerHost(name: "h1", slots: 2, used: 0)]
        #expect(Set(Scheduler.place((1...3).map { SchedulerJob(id: $0) }, on: closed).map(\.host)) == ["h1"])
    }

    @Test func retriesPreferHostsWhereTheJobHasNotFailed() {
        let hosts = [SchedulerHost(name: "h1", slots: 2, used: 0), SchedulerHost(name: "h2", slots: 2, used: 1)]
        // h1 is the better home by free share, but job 1 failed there.
        #expect(Scheduler.place([SchedulerJob(id: 1, avoid: ["h1"])], on: hosts) == [.init(job: 1, host: "h2")])
        // It waits for h2 rather than go back to h1 while h2 is busy…
        let busy = [SchedulerHost(name: "h1", slots: 2, used: 0), SchedulerHost(name: "h2", slots: 1, used: 1)]
        #expect(Scheduler.place([SchedulerJob(id: 1, avoid: ["h1"])], on: busy).isEmpty)
        // …also when an earlier job of the round reserved h2 (a big job waiting for it).
        let reserving = [SchedulerHost(name: "h1", slots: 2, used: 0), SchedulerHost(name: "h2", slots: 4, used: 2)]
        #expect(Scheduler.place([SchedulerJob(id: 1, slots: 4), SchedulerJob(id: 2, avoid: ["h1"])], on: reserving).isEmpty)
        // …and goes back there when it failed everywhere, or no other host fits.
        #expect(Scheduler.place([SchedulerJob(id: 1, avoid: ["h1", "h2"])], on: busy) == [.init(job: 1, host: "h1")])
        #expect(Scheduler.place([SchedulerJob(id: 1, labels: ["gpu": "yes"], avoid: ["h1"])],
                                on: [SchedulerHost(name: "h1", slots: 2, used: 0, labels: ["gpu": "yes"]), SchedulerHost(name: "h2", slots: 2, used: 0)])
                == [.init(job: 1, host: "h1")])
    }
}
