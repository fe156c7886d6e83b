import DroverCore
import Foundation
import Testing
@testable import DroverAgent

/// A shim that finished its attempt is handed the next one (docs/agent.md, "Reused shims"):
/// each attempt still gets its own everything, jobs still outlive the agent, and nothing is
/// left behind when a reused shim is killed or retired.
@Suite("reused shims", .serialized, .timeLimit(.minutes(3)))
struct ShimReuseTests {
    /// Runs `first` to its end (logged), so its shim is idle, and returns that shim's pid.
    private func idleShim(_ h: AgentHarness, _ first: AttemptID) throws -> pid_t {
        #expect(try h.result(first)["reason"]?.stringValue == "exited")
        try h.waitFor("\(first)'s end in the event log") {
            h.events().contains { $0["job"]?.stringValue == first.job && $0["state"]?.stringValue == "exited" }
        }
        return try #require(AttemptProcesses(transitionsFile: h.dir.transitionsFile(first)).shimPID)
    }

    private func shimPID(_ h: AgentHarness, _ id: AttemptID) -> pid_t? {
        AttemptProcesses(transitionsFile: h.dir.transitionsFile(id)).shimPID
    }

    @Test func theSecondAttemptOfAReusedShimHasItsOwnEnvironmentDirectoryAndLimits() throws {
        let h = try AgentHarness()
        try h.start()
        let script = "echo \"$X/$DROVER_JOB/$DROVER_COOKIE\"; pwd; ulimit -n; cat /proc/self/cgroup"
        let first = try h.submit("first", shell: script, extra: ["env": ["X": "one"], "cwd": "/tmp", "limits": ["open_files": 100]])
        let shim = try idleShim(h, first)
        let second = try h.submit("second", shell: script, extra: ["env": ["Y": "two"], "cwd": "/", "limits": ["open_files": 200], "nice": 5])
        #expect(try h.result(second)["reason"]?.stringValue == "exited")
        #expect(shimPID(h, second) == shim, "the idle shim was not reused")
        let a = String(decoding: h.stdout(first), as: UTF8.self).split(separator: "\n")
        let b = String(decoding: h.stdout(second), as: UTF8.self).split(separator: "\n")
        #expect(a.first == "one/first/\(h.dir.cookie(first).dropFirst("DROVER_COOKIE=".count))")
        // Nothing of the first attempt's environment is left: X is unset, the cookie is the second's.
        #expect(b.first == "/second/\(h.dir.cookie(second).dropFirst("DROVER_COOKIE=".count))")
        #expect(a.dropFirst().first == "/tmp" && b.dropFirst().first == "/")
        #expect(a.dropFirst(2).first == "100" && b.dropFirst(2).first == "200")
        if AgentTests.cgroupWritable {
            // Each attempt ran in a cgroup of its own, removed with it.
            #expect(a.last?.hasSuffix(JobCgroup.name(for: h.dir, first)) == true, "\(a)")
            #expect(b.last?.hasSuffix(JobCgroup.name(for: h.dir, second)) == true, "\(b)")
        }
        #expect(h.cookiePIDs().isEmpty)
    }

    @Test func aJobOnAReusedShimOutlivesAKilledAgentAndTheShimThenExits() throws {
        let h = try AgentHarness()
        try h.start()
        let shim = try idleShim(h, try h.submit("warm", argv: ["true"]))
        let long = try h.submit("long", argv: ["sh", "-c", "sleep 1.5; echo done"])
        try h.waitRunning(long)
        #expect(shimPID(h, long) == shim, "the idle shim was not reused")
        let agent = try #require(h.agentPID())
        kill(agent, SIGKILL)
        try h.waitFor("the old agent to die") { kill(agent, 0) != 0 }
        try h.start()
        let r = try h.result(long)
        #expect(r["reason"]?.stringValue == "exited" && r["exit_code"]?.intValue == 0)
        #expect(String(decoding: h.stdout(long), as: UTF8.self) == "done\n")
        // Its agent is gone, so no attempt can come: the shim ends with its attempt.
        try h.waitFor("the shim to exit after its attempt", timeout: 10) { !processExists(shim) }
        // The new agent starts shims of its own for new attempts.
        let next = try h.submit("next", argv: ["true"])
        #expect(try h.result(next)["reason"]?.stringValue == "exited")
        #expect(shimPID(h, next) != shim)
    }

    @Test func killingAReusedShimMakesItsAttemptLostWithNoLeftovers() throws {
        let h = try AgentHarness()
        try h.start()
        let shim = try idleShim(h, try h.submit("warm", argv: ["true"]))
        let victim = try h.submit("victim", shell: "(sleep 305 &); setsid -f sleep 306; sleep 300")
        try h.waitRunning(victim)
        #expect(shimPID(h, victim) == shim, "the idle shim was not reused")
        try h.waitFor("descendants") { h.cookiePIDs().count >= 3 }
        kill(shim, SIGKILL)
        #expect(try h.result(victim)["reason"]?.stringValue == "lost")
        try h.waitFor("leftovers to be killed", timeout: 5) { h.cookiePIDs().isEmpty }
        // The next attempt gets a new shim, not the dead one.
        let next = try h.submit("next", argv: ["true"])
        #expect(try h.result(next)["reason"]?.stringValue == "exited")
        #expect(shimPID(h, next) != shim)
    }

    @Test func anIdleShimIsRetiredAndOneLeftByAStoppedAgentExits() throws {
        let h = try AgentHarness()
        try h.start()
        let shim = try idleShim(h, try h.submit("warm", argv: ["true"]))
        try h.waitFor("the idle shim to be retired", timeout: Supervisor.idleSeconds + 10) { !processExists(shim) }
        let again = try idleShim(h, try h.submit("again", argv: ["true"]))
        #expect(again != shim)
        let stop = try h.agent(["stop"])
        #expect(stop.status == 0, "\(stop.stderr)")
        try h.waitFor("the idle shim to exit with its agent", timeout: 10) { !processExists(again) }
    }

    /// Found by the soak's disk-full fault: a reused shim that could not write its attempt's
    /// end stayed alive and idle, so the agent never learned of it and the attempt stayed
    /// `running` for good. Such a shim exits; the agent ends the attempt once there is space.
    @Test(.enabled(if: geteuid() == 0, "needs root to mount a small tmpfs as the agent's disk"))
    func aShimThatCannotRecordItsEndOnAFullDiskExitsAndTheAttemptEndsOnceThereIsSpace() throws {
        let disk = FileManager.default.temporaryDirectory.appendingPathComponent("drover-full-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        let mount = try ChildProcess.run(["/bin/mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", disk])
        try #require(mount.status == 0, "mount: \(mount.stderrText)")
        defer {
            _ = try? ChildProcess.run(["/bin/umount", "-l", disk])
            try? FileManager.default.removeItem(atPath: disk)
        }
        let h = try AgentHarness(root: disk + "/root")
        try h.start()
        let shim = try idleShim(h, try h.submit("warm", argv: ["true"]))
        // The job's own output fills the disk; `head` then fails, and its end cannot be written.
        let filler = try h.submit("filler", shell: "head -c 20000000 /dev/zero")
        try h.waitFor("the reused shim to exit", timeout: 30) { !processExists(shim) }
        #expect(h.state(filler)?.isFinal != true, "the end could not have been written on the full disk")
        unlink(h.dir.stdoutFile(filler))
        let r = try h.result(filler, timeout: 30)
        #expect(r["reason"]?.stringValue == "lost", "\(r)")
        let next = try h.submit("next", argv: ["true"])
        #expect(try h.result(next)["reason"]?.stringValue == "exited")
    }

}

/// Whether `pid` is a live process (not a zombie; a shim's parent may not have reaped it yet).
private func processExists(_ pid: pid_t) -> Bool {
    guard kill(pid, 0) == 0 || errno == EPERM else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
    return stat[stat.index(close, offsetBy: 2)] != "Z"
}
