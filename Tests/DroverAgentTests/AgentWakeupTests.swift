import DroverCore
import Foundation
import Testing
@testable import DroverAgent

/// The agent sleeps until something happens (issue 13): an idle agent wakes only for its
/// deadlines, and work still arrives promptly through events, not through a timer. Most tests
/// run with a heartbeat of 60 s, so the once-per-interval sweep cannot be what found the work.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct AgentWakeupTests {
    static let isLinux: Bool = {
        #if os(Linux)
        return true
        #else
        return false
        #endif
    }()

    /// Voluntary context switches of every thread of `pid`, and of its main thread (Linux /proc).
    static func contextSwitches(_ pid: pid_t) -> (all: Int, main: Int) {
        var all = 0, main = 0
        for task in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? [] {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") where line.hasPrefix("voluntary_ctxt_switches:") {
                let n = Int(line.split(separator: "\t").last ?? "") ?? 0
                all += n
                if task == String(pid) { main += n }
            }
        }
        return (all, main)
    }

    func heartbeat(_ h: AgentHarness) -> (seq: Int, wakeups: Int)? {
        guard let hb = readJSON(h.dir.heartbeatFile), let seq = hb["seq"]?.intValue, let w = hb["wakeups"]?.intValue else { return nil }
        return (seq, w)
    }

    @Test(.enabled(if: AgentWakeupTests.isLinux, "counts context switches in /proc/PID/task/*/status, which only Linux has"))
    func anIdleAgentWakesOnlyForItsDeadlines() throws {
        let h = try AgentHarness(heartbeat: 1)
        try h.start()
        let pid = try #require(h.agentPID())
        // Settled: two beats after the start.
        try h.waitFor("the second heartbeat", timeout: 10) { (heartbeat(h)?.seq ?? 0) >= 2 }
        let first = try #require(heartbeat(h))
        let before = Self.contextSwitches(pid)
        let start = Date()
        // Four heartbeat intervals, measured from beat to beat (the counter is written by the beat).
        try h.waitFor("four more heartbeats", timeout: 15) { (heartbeat(h)?.seq ?? 0) >= first.seq + 4 }
        let last = try #require(heartbeat(h))
        let after = Self.contextSwitches(pid)
        let seconds = Date().timeIntervalSince(start)
        let intervals = Double(last.seq - first.seq)
        let wakeups = last.wakeups - first.wakeups
        // Nothing is due in these few seconds: the sweep comes every 30 s (at most one may fall
        // in the window), the heartbeat is the other thread's. The old loop (a 2 ms sleep) woke
        // ~500 times a second, the loop of session 8 once per beat for its sweep.
        #expect(wakeups <= 1, "the main loop woke \(wakeups) times in \(intervals) heartbeat intervals")
        // The kernel's count covers everything: the heartbeat thread (a sleep and the fsyncs of
        // each beat) and wakes the loop's own counter does not see (events it ignores).
        let all = after.all - before.all, main = after.main - before.main
        // The main thread still returns from the kernel for the root folder's events of each
        // beat (the heartbeat's temporary file made and renamed), which the watch filters out.
        #expect(Double(main) <= 3 * seconds, "the main thread blocked \(main) times in \(seconds) s")
        #expect(Double(all) <= 40 * seconds, "the agent's threads blocked \(all) times in \(seconds) s")
    }

    @Test func workArrivesThroughEventsNotTheSweep() throws {
        let h = try AgentHarness(heartbeat: 60)
        try h.start()
        #if os(Linux)
        // The agent beats before it has re-adopted its attempts and says how it waits: the
        // line may come a moment after the first heartbeat that `start` waits for.
        let log = { String(decoding: (try? LocalFile.read(h.dir.agentLog)) ?? [], as: UTF8.self) }
        try h.waitFor("the agent to say how it waits (agent.log: \(log()))") { log().contains("running in") }
        #expect(log().contains("waiting with inotify"), "agent.log: \(log())")
        #endif
        try runsAndCancelsPromptly(h)
        try stopsPromptly(h)
    }

    @Test func thePollingFallbackRunsJobsToo() throws {
        let h = try AgentHarness(heartbeat: 60)
        h.environment["DROVER_AGENT_FILEWATCH"] = "poll"
        try h.start()
        let log = { String(decoding: (try? LocalFile.read(h.dir.agentLog)) ?? [], as: UTF8.self) }
        try h.waitFor("the agent to say how it waits (agent.log: \(log()))") { log().contains("running in") }
        #expect(log().contains("waiting with polling every 0.5 s"), "agent.log: \(log())")
        try runsAndCancelsPromptly(h)
        try stopsPromptly(h)
    }

    /// A job placed in the inbox runs to its end, and a cancel stops a running one, each well
    /// within the 60 s heartbeat interval.
    func runsAndCancelsPromptly(_ h: AgentHarness) throws {
        let quick = try h.submit("quick", argv: ["sh", "-c", "exit 4"])
        let r = try h.result(quick, timeout: 5)
        #expect(r["reason"]?.stringValue == "exited" && r["exit_code"]?.intValue == 4)
        try h.waitFor("the final transition in the event log", timeout: 5) {
            h.events().contains { $0["job"]?.stringValue == "quick" && $0["state"]?.stringValue == "exited" }
        }
        let sleeper = try h.submit("sleeper", argv: ["sleep", "300"])
        try h.waitFor("\(sleeper) to run", timeout: 5) { h.state(sleeper) == .running }
        try h.place(["type": "cancel", "job": "sleeper"])
        let c = try h.result(sleeper, timeout: 5)
        #expect(c["reason"]?.stringValue == "cancelled")
    }

    func stopsPromptly(_ h: AgentHarness) throws {
        let start = Date()
        let r = try h.agent(["stop"])
        #expect(r.status == 0, "\(r.stderr)")
        // Far below the 60 s heartbeat: the stop request woke it, not a timer (loose for loaded machines).
        #expect(Date().timeIntervalSince(start) < 20, "stop took \(Date().timeIntervalSince(start)) s")
    }

    /// With a pidfd (Linux) the agent hears of it at once; without (`DROVER_AGENT_PIDFD=off`, as
    /// on kernels before 5.3 and on macOS) its one-second timer finds it.
    @Test(arguments: [true, false])
    func anAdoptedShimThatDiesIsLost(pidfd: Bool) throws {
        let h = try AgentHarness(heartbeat: 60)
        if !pidfd { h.environment["DROVER_AGENT_PIDFD"] = "off" }
        try h.start()
        let id = try h.submit("adopted", argv: ["sleep", "300"])
        try h.waitRunning(id)
        let agent = try #require(h.agentPID())
        kill(agent, SIGKILL)
        try h.waitFor("the old agent to die") { kill(agent, 0) != 0 }
        try h.start()
        let shim = try #require(AttemptProcesses(transitionsFile: h.dir.transitionsFile(id)).shimPID)
        // The new agent is not the shim's parent: only its exit handle (or its timer) can tell
        // it the shim died; the sweep, once a minute here, is too slow for the deadline below.
        try h.waitFor("the re-adoption") { h.events().contains { $0["type"]?.stringValue == "agent_started" && $0["pid"]?.intValue != Int(agent) } }
        kill(shim, SIGKILL)
        let r = try h.result(id, timeout: 5)
        #expect(r["reason"]?.stringValue == "lost")
        try h.waitFor("leftovers to be killed", timeout: 5) { h.cookiePIDs().isEmpty }
    }

    @Test func aLeaseExpiresOnItsOwnDeadlineAndRenewalsInPlaceCount() throws {
        let h = try AgentHarness(heartbeat: 60)
        try h.start()
        func lease(_ c: String) -> [UInt8] {
            Array("{\"coordinator\":\"\(c)\",\"epoch\":1,\"time\":\(Date().timeIntervalSince1970),\"ttl\":1}\n".utf8)
        }
        try FileManager.default.createDirectory(atPath: h.dir.leases, withIntermediateDirectories: true)
        try AtomicFile.write(lease("gone"), to: h.dir.leaseFile(coordinator: "gone"))
        try AtomicFile.write(lease("kept"), to: h.dir.leaseFile(coordinator: "kept"))
        let orphan = try h.submit("orphan", argv: ["sleep", "300"], extra: ["coordinator": "gone"])
        let kept = try h.submit("kept", argv: ["sleep", "300"], extra: ["coordinator": "kept"])
        try h.waitRunning(orphan)
        try h.waitRunning(kept)
        // "kept" is renewed by writing the file in place (no rename), three times a ttl.
        let path = h.dir.leaseFile(coordinator: "kept")
        let r: JSONNode
        do {
            let fd = open(path, O_WRONLY)
            defer { close(fd) }
            let end = Date().addingTimeInterval(10)
            while h.state(orphan)?.isFinal != true && Date() < end {
                let bytes = lease("kept")
                _ = ftruncate(fd, 0)
                _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                usleep(300_000)
            }
            r = try h.result(orphan, timeout: 1)
        }
        #expect(r["reason"]?.stringValue == "orphaned")
        #expect(h.state(kept) == .running, "a lease renewed in place did not count as renewed")
        let expired = h.events().filter { $0["type"]?.stringValue == "lease_expired" }.compactMap { $0["coordinator"]?.stringValue }
        #expect(expired == ["gone"])
        try h.place(["type": "cancel", "job": "kept"])
        #expect(try h.result(kept, timeout: 5)["reason"]?.stringValue == "cancelled")
    }
}
