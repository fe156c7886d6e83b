import DroverCore
import Foundation
import Testing
@testable import DroverAgent

/// Retention on a real agent: the event log rotated into segments and followed across them,
/// and garbage collection that keeps the root under its cap without losing an uncollected result.
@Suite(.serialized) struct RetentionTests {
    /// Writes the root's retention policy as `link --keep … --max-size … --segment-size …` does.
    static func setPolicy(_ h: AgentHarness, keep: Double = 7 * 86_400, maxSize: Int64? = nil, segmentSize: Int64) throws {
        try StateDirectory.makeDirectory(h.root)
        let p = RetentionPolicy(keep: keep, maxSize: maxSize, segmentSize: segmentSize)
        try AtomicFile.write(Array((p.json + "\n").utf8), to: h.dir.retentionFile)
    }

    /// Writes coordinator `id`'s lease with its collected mark, as `link` does.
    static func lease(_ h: AgentHarness, _ id: String, collected: Int) throws {
        try StateDirectory.makeDirectory(h.dir.leases)
        try AtomicFile.write(Array("{\"coordinator\":\"\(id)\",\"epoch\":1,\"time\":0,\"ttl\":3600,\"collected\":\(collected)}\n".utf8),
                             to: h.dir.leaseFile(coordinator: id), durable: false)
    }

    static func startLines(_ jobs: Range<Int>, coordinator: String, prefix: String = "j") -> String {
        jobs.map { "{\"type\":\"start\",\"spec\":{\"job\":\"\(prefix)\($0)\",\"attempt\":1,\"argv\":[\"true\"],\"coordinator\":\"\(coordinator)\"}}" }
            .joined(separator: "\n") + "\n"
    }

    @Test func aRotatedEventLogIsFollowedAcrossSegmentsByTail() throws {
        let h = try AgentHarness()
        try Self.setPolicy(h, segmentSize: 4096)
        try h.start()
        try h.waitFor("agent_started in the log") { !h.events().isEmpty }
        let tail = try StreamingChild([h.binary, "tail", "--from", "1", "--follow", "--root", h.root], environment: h.environment)
        var seqs: [Int] = []
        func read(until done: (JSONNode) -> Bool) throws {
            while true {
                let node = try JSONParser.parse(try tail.readLine(timeout: 20))
                if let s = node["seq"]?.intValue { seqs.append(s) }
                if done(node) { return }
            }
        }
        try read { $0["caught_up"] != nil }
        // 60 jobs: about 240 events of ~250 bytes, so the log (closed after an append that takes it
        // past 4 KiB) becomes several segments while tail follows it.
        for batch in 0..<6 {
            #expect(try h.agent(["send"], stdin: Self.startLines((batch * 10)..<(batch * 10 + 10), coordinator: "c1")).status == 0)
            try h.waitFor("batch \(batch) ended", timeout: 60) {
                h.events().filter { $0["state"]?.stringValue == "exited" }.count == batch * 10 + 10
            }
        }
        let segments = EventSegments.closed(h.dir)
        #expect(segments.count >= 4, "segments: \(segments.map(\.path))")
        let last = try #require(h.events().last?["seq"]?.intValue)
        try read { ($0["seq"]?.intValue ?? 0) >= last }
        #expect(seqs == Array(1...last), "each event once, in order, across \(segments.count) segments")

        // From a seq inside an old segment: exactly the rest, and caught_up at the end.
        let middle = try #require(segments.dropFirst().first?.firstSeq) + 1
        let r = try h.agent(["tail", "--from", String(middle)])
        let printed = r.stdout.split(separator: "\n").compactMap { (try? JSONParser.parse(String($0)))?["seq"]?.intValue }
        #expect(printed == Array(middle...last))
        // A restarted agent numbers on from the newest segment, even with events.log just closed.
        #expect(try h.agent(["stop"]).status == 0)
        try h.waitFor("agent stopped") { h.agentPID().map { kill($0, 0) != 0 } ?? true }
        try h.start()
        try h.waitFor("agent_started again") { h.events().filter { $0["type"]?.stringValue == "agent_started" }.count == 2 }
        let all = h.events().compactMap { $0["seq"]?.intValue }
        #expect(all == Array(1...all.count), "seq continues across segments and restarts")
    }

    /// 2,000 trivial jobs under a 3 MiB cap: the agent's own gc (woken by attempts ending and
    /// lease renewals while over the cap) keeps the root under it, no result is removed before
    /// the "coordinator" read it, and another coordinator's uncollected attempts all stay.
    @Test func twoThousandJobsWithASmallCapKeepTheRootUnderItAndLoseNoUncollectedResult() throws {
        let h = try AgentHarness()
        let cap: Int64 = 3 << 20
        try Self.setPolicy(h, maxSize: cap, segmentSize: 64 << 10)
        try Self.lease(h, "tc", collected: 0)
        try h.start()
        let total = 2000
        var submitted = 0
        var collected = Set<String>()
        var lost: [String] = []
        var applied = 0
        var lastLease = Date()
        let deadline = Date().addingTimeInterval(300)
        while collected.count < total {
            #expect(Date() < deadline, "2,000 jobs within 5 minutes (collected \(collected.count))")
            if Date() > deadline { return }
            if submitted < total && submitted - collected.count < 200 {
                let n = min(50, total - submitted)
                #expect(try h.agent(["send"], stdin: Self.startLines(submitted..<(submitted + n), coordinator: "tc")).status == 0)
                submitted += n
            }
            // The coordinator's part: read the events after the last applied one, fetch each
            // ended attempt's result (it must still be there), then say so in the lease.
            let r = try h.agent(["tail", "--from", String(applied + 1)])
            var progressed = false
            for line in r.stdout.split(separator: "\n") {
                guard let node = try? JSONParser.parse(String(line)), let seq = node["seq"]?.intValue else { continue }
                if node["state"]?.stringValue == "exited", let job = node["job"]?.stringValue {
                    let id = AttemptID(job: job, attempt: 1)
                    if readJSON(h.dir.resultFile(id))?["exit_code"]?.intValue == 0 { collected.insert(job) } else { lost.append(job) }
                }
                applied = seq
                progressed = true
            }
            if progressed && Date().timeIntervalSince(lastLease) > 0.2 {
                try Self.lease(h, "tc", collected: applied)
                lastLease = Date()
            }
            if !progressed { usleep(20_000) }
        }
        try Self.lease(h, "tc", collected: applied)
        #expect(lost.isEmpty, "results removed before they were collected: \(lost.prefix(5))")
        #expect(collected.count == total)

        // Another coordinator's attempts, never collected: they all stay, whatever the cap.
        #expect(try h.agent(["send"], stdin: Self.startLines(0..<20, coordinator: "other", prefix: "o")).status == 0)
        let others = (0..<20).map { AttemptID(job: "o\($0)", attempt: 1) }
        for id in others { _ = try h.result(id) }
        try Self.lease(h, "tc", collected: applied)

        // The agent's gc, not a hand-run one, brings the root under the cap.
        try h.waitFor("the root under its cap (now \(DiskUsage.of(h.root)) bytes)", timeout: 60) { DiskUsage.of(h.root) <= cap }
        #expect(others.allSatisfy { LocalFile.exists(h.dir.resultFile($0)) }, "uncollected attempts are never removed")
        let kept = listDirectory(h.dir.attempts).count
        #expect(kept < total / 2, "collected attempts were removed (\(kept) job folders left)")
        // The log now begins after seq 1: applied segments were removed (every closed one may be
        // gone by now, and then the log begins with events.log).
        let oldest = EventSegments.closed(h.dir).first?.firstSeq ?? EventSegments.firstSeq(path: h.dir.eventLog) ?? 0
        #expect(oldest > 1, "applied segments were removed (the log begins at seq \(oldest))")

        // By hand: a dry run names what it would remove and why, and removes nothing.
        let dry = try h.agent(["gc", "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("cap"), "\(dry.stdout) \(dry.stderr)")
        #expect(dry.stdout.contains("20 ended attempt(s) kept, not collected yet"), "\(dry.stdout)")
    }

    @Test func aDryRunRemovesNothingAndGCRemovesCollectedAttemptsPastKeep() throws {
        let h = try AgentHarness()
        try Self.setPolicy(h, keep: 0, segmentSize: 1 << 20)
        try h.start()
        #expect(try h.agent(["send"], stdin: Self.startLines(0..<3, coordinator: "c1")).status == 0)
        let ids = (0..<3).map { AttemptID(job: "j\($0)", attempt: 1) }
        for id in ids { _ = try h.result(id) }
        try h.waitFor("three ends in the log") { h.events().filter { $0["state"]?.stringValue == "exited" }.count == 3 }
        let finals = h.events().filter { $0["state"]?.stringValue == "exited" }.compactMap { $0["seq"]?.intValue }.sorted()
        // Collected up to the second end only: the third stays, whatever the keep time.
        try Self.lease(h, "c1", collected: finals[1])
        let dry = try h.agent(["gc", "--dry-run"])
        #expect(dry.stdout.contains("would remove attempts/"), "\(dry.stdout)")
        #expect(ids.allSatisfy { LocalFile.exists(h.dir.attemptDirectory($0)) }, "a dry run removes nothing")
        let run = try h.agent(["gc"])
        #expect(run.status == 0 && run.stdout.contains("removed 2 attempt folder(s)"), "\(run.stdout) \(run.stderr)")
        let left = ids.filter { LocalFile.exists(h.dir.attemptDirectory($0)) }
        #expect(left.count == 1 && LocalFile.exists(h.dir.resultFile(left[0])), "only the uncollected attempt is left: \(left)")
    }
}
