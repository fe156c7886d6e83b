import Testing
@testable import DroverCoordinator

/// The coordinator's own sleep is told from ordinary scheduling by clocks passed in: no sleeping.
@Suite("SleepDetector")
struct SleepDetectorTests {
    @Test func aWaitThatEndsOnTimeOrEarlyIsNoGap() {
        var d = SleepDetector(threshold: 1.5, monotonic: 100, wall: 1_000_100)
        d.willWait(until: 105)
        #expect(d.check(monotonic: 102, wall: 1_000_102) == nil, "a ring that ended the wait early")
        d.willWait(until: 107)
        #expect(d.check(monotonic: 107.4, wall: 1_000_107.4) == nil, "a wake 0.4 s late is scheduling")
    }

    @Test func aWakeFarPastItsDeadlineIsASleep() {
        var d = SleepDetector(threshold: 1.5, monotonic: 100, wall: 1_000_100)
        d.willWait(until: 101)
        // SIGSTOP for 35 s while waiting (both clocks advance).
        let gap = d.check(monotonic: 136, wall: 1_000_136)
        #expect(gap == SleepDetector.Gap(seconds: 35, cause: .lateWake))
        // The next checkpoint is measured from the wake, not from before the sleep.
        #expect(d.check(monotonic: 136.1, wall: 1_000_136.1) == nil)
    }

    @Test func aStopBetweenTwoCheckpointsWithoutAWaitIsASleep() {
        var d = SleepDetector(threshold: 1.5, monotonic: 10, wall: 500)
        #expect(d.check(monotonic: 10.01, wall: 500.01) == nil)
        let gap = d.check(monotonic: 14, wall: 504)
        #expect(gap?.cause == .lateWake)
        #expect(gap.map { abs($0.seconds - 3.99) < 1e-9 } == true)
    }

    @Test func aSuspendTheMonotonicClockDidNotCountShowsAsAWallJump() {
        var d = SleepDetector(threshold: 1.5, monotonic: 10, wall: 500)
        d.willWait(until: 15)
        // The monotonic clock stood still during a system suspend of an hour; the wall clock did not.
        let gap = d.check(monotonic: 15, wall: 4105)
        #expect(gap == SleepDetector.Gap(seconds: 3600, cause: .wallJump))
        // A wall clock set back (NTP) is no sleep.
        #expect(d.check(monotonic: 15.1, wall: 4000) == nil)
    }

    @Test func theThresholdIsHalfTheDeadHostTimeWithinBounds() {
        #expect(SleepDetector.threshold(deadAfter: 3) == 1.5)
        #expect(SleepDetector.threshold(deadAfter: 1) == 1)
        #expect(SleepDetector.threshold(deadAfter: 60) == 5)
    }

    @Test func anExcusedHostIsNotJudgedForTheCoordinatorsSleep() {
        var live = HostLiveness(deadAfter: 3, since: 0)
        live.observe(seq: 1, pid: 9, interval: 1, at: 1)
        // The coordinator slept from 1.5 to 40: without the excuse the host would be down.
        #expect(live.state(at: 40) == .down)
        live.excuse(at: 40, grace: 7)
        #expect(live.state(at: 40) == .up)
        #expect(live.state(at: 49.9) != .down, "down before --dead-after plus the grace since the wake")
        #expect(live.state(at: 50) == .down)
        live.observe(seq: 2, pid: 9, interval: 1, at: 41)
        #expect(live.state(at: 42) == .up)
    }
}
