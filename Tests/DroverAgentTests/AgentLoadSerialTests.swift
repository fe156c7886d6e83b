import DroverCore
import Foundation
import Testing
@testable import DroverAgent

/// Tests that load the whole machine (every CPU busy, a gigabyte written, 500 jobs) or that
/// measure memory or pace. `scripts/test` runs every suite named `…SerialTests` in a second
/// pass, one test at a time (`--no-parallel`), so that no timing or memory assertion of any
/// other test runs while these saturate a 2-core machine, and theirs run alone.
@Suite("drover-agent under load (serial pass)", .serialized, .timeLimit(.minutes(3)))
struct AgentLoadSerialTests {
    /// The heartbeat keeps the pace the coordinators' leases ask for (several coordinators:
    /// the shortest wish of the live leases). A pace, so it runs here: beside the unit pass and
    /// two soaks five beats of 0.2 s once took more than 3 s.
    @Test func theHeartbeatKeepsThePaceTheLiveLeasesAskFor() throws {
        let a = try AgentHarness(heartbeat: 5)
        try a.start()
        func beat() -> (interval: Double?, seq: Int?) {
            let hb = readJSON(a.dir.heartbeatFile)
            return (hb?["interval"]?.doubleValue, hb?["seq"]?.intValue)
        }
        #expect(beat().interval == 5)
        // A coordinator that wants a beat every 0.2 s: the 5 s sleep is cut short, and beats follow.
        try FileManager.default.createDirectory(atPath: a.dir.leases, withIntermediateDirectories: true)
        try AtomicFile.write(Array(Lease(coordinator: "cafe0001", epoch: 1, time: 0, ttl: 60, beat: 0.2).json.utf8),
                             to: a.dir.leaseFile(coordinator: "cafe0001"))
        try a.waitFor("a beat at 0.2 s", timeout: 4) { beat().interval == 0.2 }
        let seq = beat().seq ?? 0
        try a.waitFor("five more beats within 3 s (at 5 s there would be none)", timeout: 3) { (beat().seq ?? 0) >= seq + 5 }
        // A second coordinator asking for 1 s: the shortest wish of the live leases wins.
        try AtomicFile.write(Array(Lease(coordinator: "cafe0002", epoch: 1, time: 0, ttl: 60, beat: 1).json.utf8),
                             to: a.dir.leaseFile(coordinator: "cafe0002"))
        try a.waitFor("still 0.2 s", timeout: 2) { beat().interval == 0.2 && (beat().seq ?? 0) > seq + 5 }
        try FileManager.default.removeItem(atPath: a.dir.leaseFile(coordinator: "cafe0001"))
        try a.waitFor("1 s once the first coordinator left", timeout: 4) { beat().interval == 1 }
        // No lease asks any more: the agent's own interval.
        try FileManager.default.removeItem(atPath: a.dir.leaseFile(coordinator: "cafe0002"))
        try a.waitFor("its own 5 s again (the next beat, 5 s after the last)", timeout: 8) { beat().interval == 5 }
    }

    /// `drover-agent output --follow` (what `drover logs --follow` and result fetches run on the
    /// host) copies a gigabyte in chunks: its resident memory stays flat, and every byte arrives.
    @Test func followingAGigabyteOfOutputKeepsTheCopiersMemoryFlat() throws {
        let h = try AgentHarness()
        try h.start()
        let id = try h.submit("big", shell: "head -c 1000000000 /dev/zero")
        let follower = Process()
        follower.executableURL = URL(fileURLWithPath: h.binary)
        follower.arguments = ["output", "\(id.job)/\(id.attempt)", "--follow", "--stdout-only", "--root", h.root]
        let pipe = Pipe()
        follower.standardOutput = pipe
        follower.standardError = FileHandle.nullDevice
        try follower.run()
        defer { if follower.isRunning { follower.terminate() } }
        var bytes = 0, peak = 0, reads = 0
        let reader = pipe.fileHandleForReading
        while let chunk = try reader.read(upToCount: 1 << 20), !chunk.isEmpty {
            bytes += chunk.count
            reads += 1
            if reads % 16 == 0 { peak = max(peak, LinuxProcessTableProbe.residentBytes(follower.processIdentifier)) }
        }
        follower.waitUntilExit()
        #expect(follower.terminationStatus == 0)
        #expect(bytes == 1_000_000_000, "the follower copied \(bytes) bytes")
        #expect(peak > 0, "the follower's memory was sampled")
        #expect(peak < 16 << 20, "the follower's RSS reached \(peak >> 20) MiB copying 1 GB")
        try? FileManager.default.removeItem(atPath: h.dir.stdoutFile(id))
    }

    @Test func heartbeatsKeepTheirPaceWithEveryCPUSaturated() throws {
        let h = try AgentHarness(heartbeat: 0.25)
        try h.start()
        let burners = try (1...(2 * ProcessInfo.processInfo.activeProcessorCount)).map {
            try h.submit("burn\($0)", shell: "while :; do :; done")
        }
        for id in burners { try h.waitRunning(id) }
        var beats: [(seq: Int, at: Date)] = []
        let end = Date().addingTimeInterval(4)
        while Date() < end {
            // Sampling the heartbeat file at 50 Hz to measure its pace (not to synchronise).
            if let seq = readJSON(h.dir.heartbeatFile)?["seq"]?.intValue, seq != beats.last?.seq { beats.append((seq, Date())) }
            usleep(20_000)
        }
        for id in burners { _ = try h.agent(["cancel", id.job]) }
        let gaps = zip(beats.dropFirst(), beats).map { $0.at.timeIntervalSince($1.at) }
        #expect(beats.count >= 12, "only \(beats.count) beats in 4 s at 0.25 s")
        #expect((gaps.max() ?? 9) < 1.0, "largest gap \(gaps.max() ?? 0) s")
        for id in burners { _ = try h.result(id) }
    }

    @Test func fiveHundredShortJobsAllCompleteAndAreRecorded() throws {
        let h = try AgentHarness()
        try h.start()
        let ids = try (1...500).map { try h.submit("short\($0)", argv: ["true"]) }
        try h.waitFor("500 jobs", timeout: 120) { ids.allSatisfy { h.state($0)?.isFinal == true } }
        for id in ids { #expect(readJSON(h.dir.resultFile(id))?["exit_code"]?.intValue == 0) }
        try h.waitFor("all events", timeout: 10) {
            h.events().filter { $0["type"]?.stringValue == "transition" }.count == 2000
        }
    }
}
