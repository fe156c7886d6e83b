import Testing
@testable import DroverCoordinator

/// Liveness is a pure function of the beats observed and a clock passed in: no sleeping.
@Suite("HostLiveness")
struct HostLivenessTests {
    /// Beats of one agent process: seq 1…n, one per interval from `start`.
    func beating(_ live: inout HostLiveness, pid: Int, seqs: ClosedRange<Int>, from start: Double, interval: Double = 1) {
        for (i, seq) in seqs.enumerated() {
            live.observe(seq: seq, pid: pid, interval: interval, at: start + Double(i) * interval)
        }
    }

    @Test func connectingUntilTheFirstBeat() {
        var live = HostLiveness(deadAfter: 10, since: 100)
        #expect(live.state(at: 100) == .connecting)
        #expect(live.state(at: 109.9) == .connecting)
        #expect(!live.seen)
        live.observe(seq: 1, pid: 7, interval: 1, at: 105)
        #expect(live.seen)
        #expect(live.state(at: 105) == .up)
    }

    @Test func aHostThatNeverBeatsIsDownAtDeadAfter() {
        let live = HostLiveness(deadAfter: 10, since: 100)
        #expect(live.state(at: 110) == .down)
    }

    @Test func upWhileTheSequenceAdvances() {
        var live = HostLiveness(deadAfter: 10, since: 0)
        // 30 s of beats: far longer than deadAfter in all, but each one is new.
        for seq in 1...30 {
            let t = Double(seq)
            live.observe(seq: seq, pid: 7, interval: 1, at: t)
            #expect(live.state(at: t + 0.9) == .up)
        }
        #expect(live.lastSeq == 30)
    }

    @Test func suspectAfterThreeMissedIntervalsThenDownAtDeadAfter() {
        var live = HostLiveness(deadAfter: 10, since: 0)
        beating(&live, pid: 7, seqs: 1...5, from: 1)  // last beat at t = 5
        #expect(live.state(at: 7) == .up)       // 2 intervals without a beat
        #expect(live.state(at: 8) == .up)       // the 3rd is just due
        #expect(live.state(at: 9) == .suspect)  // 3 missed
        #expect(live.state(at: 14.9) == .suspect)
        #expect(live.state(at: 15) == .down)    // deadAfter since the last advance
        #expect(live.state(at: 500) == .down)
    }

    @Test func theSuspectThresholdFollowsTheAgentsInterval() {
        var live = HostLiveness(deadAfter: 20, since: 0)
        beating(&live, pid: 7, seqs: 1...3, from: 0, interval: 2)  // last beat at t = 4
        #expect(live.interval == 2)
        #expect(live.state(at: 4 + 5) == .up)        // 2.5 intervals
        #expect(live.state(at: 4 + 7) == .suspect)   // 3.5 intervals
        #expect(live.state(at: 4 + 20) == .down)
        // A beat without a (valid) interval keeps the last one.
        live.observe(seq: 4, pid: 7, interval: nil, at: 30)
        live.observe(seq: 5, pid: 7, interval: 0, at: 32)
        #expect(live.interval == 2)
    }

    @Test func aBeatAfterDownBringsTheHostBack() {
        var live = HostLiveness(deadAfter: 10, since: 0)
        beating(&live, pid: 7, seqs: 1...2, from: 0)
        #expect(live.state(at: 20) == .down)
        live.observe(seq: 3, pid: 7, interval: 1, at: 20)
        #expect(live.state(at: 20.5) == .up)
    }

    @Test func aRepeatedSequenceIsNotLife() {
        var live = HostLiveness(deadAfter: 10, since: 0)
        live.observe(seq: 41, pid: 7, interval: 1, at: 1)
        // The same heartbeat again and again (the agent is gone; its file is re-read).
        for t in stride(from: 2.0, through: 10.5, by: 0.5) { live.observe(seq: 41, pid: 7, interval: 1, at: t) }
        #expect(live.lastAdvance == 1)
        #expect(live.state(at: 6) == .suspect)
        #expect(live.state(at: 11) == .down)
    }

    @Test func aNewAgentProcessRestartingAtOneIsLife() {
        var live = HostLiveness(deadAfter: 10, since: 0)
        beating(&live, pid: 100, seqs: 1...3, from: 0)  // last beat of pid 100 at t = 2
        // A new agent (restarted, upgraded) counts again from 1.
        live.observe(seq: 1, pid: 200, interval: 1, at: 9)
        #expect(live.lastPID == 200 && live.lastSeq == 1)
        #expect(live.state(at: 12) == .up)  // 10 s after pid 100's last beat, 3 after the new one
        #expect(live.state(at: 18.9) == .suspect)
        #expect(live.state(at: 19) == .down)
    }

    @Test func aNewAgentWhoseFirstSeqEqualsTheOldLastSeqIsLife() {
        var live = HostLiveness(deadAfter: 10, since: 0)
        live.observe(seq: 1, pid: 100, interval: 1, at: 0)  // the old agent died after one beat
        live.observe(seq: 1, pid: 200, interval: 1, at: 8)
        #expect(live.state(at: 11) == .up)
        // And its repeated beat is not.
        live.observe(seq: 1, pid: 200, interval: 1, at: 17)
        #expect(live.state(at: 18) == .down)
    }
}
