import DroverCore
import Foundation
import Testing
@testable import DroverAgent

@Suite("drover-agent", .serialized, .timeLimit(.minutes(3)))
struct AgentTests {
    @Test func exitCodesSignalsAndStartFailuresAreRecorded() throws {
        let h = try AgentHarness()
        try h.start()
        let a = try h.submit("exit3", argv: ["sh", "-c", "echo out; echo err >&2; exit 3"])
        let b = try h.submit("usr1", argv: ["sh", "-c", "kill -USR1 $$"])
        let c = try h.submit("missing", argv: ["/nonexistent/program", "x"])
        let ra = try h.result(a), rb = try h.result(b), rc = try h.result(c)
        #expect(ra["reason"]?.stringValue == "exited" && ra["exit_code"]?.intValue == 3)
        #expect(String(decoding: h.stdout(a), as: UTF8.self) == "out\n")
        #expect((try? String(contentsOfFile: h.dir.stderrFile(a), encoding: .utf8)) == "err\n")
        #expect(ra["max_rss_bytes"]?.intValue ?? 0 > 0)
        #expect(ra["user_cpu_seconds"] != nil && ra["started_at"] != nil && ra["ended_at"] != nil)
        #expect(rb["reason"]?.stringValue == "signaled" && rb["signal"]?.stringValue == "USR1")
        #expect(rc["reason"]?.stringValue == "start_failed")
        #expect(rc["error"]?.stringValue?.contains("No such file or directory") == true)
        // Every transition is in the event log once, in order (the agent logs the final one
        // after the shim has written result.json).
        try h.waitFor("the final transitions in the event log") {
            h.events().filter { $0["state"]?.stringValue == "exited" || $0["state"]?.stringValue == "signaled" || $0["state"]?.stringValue == "start_failed" }.count == 3
        }
        let states = h.events().filter { $0["job"]?.stringValue == "exit3" }.compactMap { $0["state"]?.stringValue }
        #expect(states == ["accepted", "starting", "running", "exited"])
        let seqs = h.events().compactMap { $0["seq"]?.intValue }
        #expect(seqs == Array(1...seqs.count))
    }

    @Test func timeoutEscalatesToSIGKILLAfterTheGrace() throws {
        let h = try AgentHarness()
        try h.start()
        let id = try h.submit("stubborn", shell: "trap '' TERM; sleep 300", extra: ["timeout": 0.5, "grace": 1])
        let start = Date()
        let r = try h.result(id)
        #expect(r["reason"]?.stringValue == "timed_out")
        #expect(r["signal"]?.stringValue == "KILL")
        #expect(Date().timeIntervalSince(start) >= 1.4)
        #expect(h.cookiePIDs().isEmpty)
    }

    @Test func cancelMidRun() throws {
        let h = try AgentHarness()
        try h.start()
        let id = try h.submit("sleeper", argv: ["sleep", "300"])
        try h.waitRunning(id)
        let c = try h.agent(["cancel", "sleeper"])
        #expect(c.status == 0, "\(c.stderr)")
        let r = try h.result(id)
        #expect(r["reason"]?.stringValue == "cancelled" && r["signal"]?.stringValue == "TERM")
        #expect(h.cookiePIDs().isEmpty)
    }

    @Test(arguments: [false, true])
    func escapedDescendantsDieWithTheJob(portable: Bool) throws {
        let h = try AgentHarness(portable: portable)
        try h.start()
        // A double-forked daemon (re-parented to the shim) and one that escapes with setsid.
        let daemon = try h.submit("daemon", shell: "(sleep 301 &) ; sleep 300")
        let escaper = try h.submit("escaper", shell: "setsid -f sleep 302; sleep 300")
        try h.waitRunning(daemon)
        try h.waitRunning(escaper)
        try h.waitFor("both descendants to exist") { h.cookiePIDs().count >= 4 }
        _ = try h.agent(["cancel", "daemon"])
        _ = try h.agent(["cancel", "escaper"])
        #expect(try h.result(daemon)["reason"]?.stringValue == "cancelled")
        #expect(try h.result(escaper)["reason"]?.stringValue == "cancelled")
        #expect(h.cookiePIDs().isEmpty, "left behind: \(h.cookiePIDs())")
    }

    /// Whether this machine lets the test user create cgroup v2 groups (root on most Linux).
    static let cgroupWritable: Bool = {
        guard let probe = JobCgroup.create(name: "drover-probe-\(getpid())") else { return false }
        probe.remove()
        return true
    }()

    @Test(.enabled(if: AgentTests.cgroupWritable, "cgroup v2 is not writable here; the other tests cover the fallback"))
    func cgroupHoldsTheJobWhereWritable() throws {
        let h = try AgentHarness()
        try h.start()
        let id = try h.submit("grouped", shell: "setsid -f sleep 309; sleep 300")
        try h.waitRunning(id)
        let cg = JobCgroup.existing(name: JobCgroup.name(for: h.dir, id))
        let group = try #require(cg, "the shim did not create the attempt's cgroup")
        try h.waitFor("both processes in the cgroup") { group.pids().count >= 2 }
        _ = try h.agent(["cancel", "grouped"])
        let r = try h.result(id)
        #expect(r["tracking"]?.stringArray?.contains("cgroup") == true)
        #expect(h.cookiePIDs().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: group.path), "the cgroup is removed with the attempt")
    }

    @Test func aJobThatEndsNormallyTakesItsDaemonsWithIt() throws {
        let h = try AgentHarness()
        try h.start()
        let id = try h.submit("leaky", shell: "setsid -f sleep 303; (sleep 304 &); exit 0")
        let r = try h.result(id)
        #expect(r["reason"]?.stringValue == "exited" && r["exit_code"]?.intValue == 0)
        #expect(r["leftovers_killed"]?.intValue ?? 0 >= 2)
        #expect(h.cookiePIDs().isEmpty)
    }

    @Test func memoryHogIsStoppedByItsLimit() throws {
        let h = try AgentHarness()
        try h.start()
        let id = try h.submit("hog", argv: ["perl", "-e", "my @a; while (1) { push @a, 'x' x 10_000_000; select(undef, undef, undef, 0.01) }"],
                              extra: ["limits": ["memory_bytes": 200_000_000]])
        let r = try h.result(id, timeout: 30)
        #expect(r["reason"]?.stringValue == "resource_limit")
        #expect(r["limit"]?.stringValue == "memory")
        #expect(h.cookiePIDs().isEmpty)
    }

    @Test func argvReachesTheJobByteForByte() throws {
        let h = try AgentHarness()
        try h.start()
        let args = ["a b", "it's", "\"q\"", "$(touch /tmp/drover-agent-pwned)", "`id`", "new\nline", "ünï ✓", "*", "", "$HOME"]
        let id = try h.submit("argv", argv: ["printf", "%s\\0"] + args)
        #expect(try h.result(id)["exit_code"]?.intValue == 0)
        let parts = h.stdout(id).split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
        #expect(parts == args)
        #expect(!FileManager.default.fileExists(atPath: "/tmp/drover-agent-pwned"))
    }

    @Test func malformedCommandIsMovedAsideAndTheNextRuns() throws {
        let h = try AgentHarness()
        try h.start()
        try h.placeRaw(Data("{not json".utf8), name: "0001-bad.json")
        try h.placeRaw(Data("ignored".utf8), name: "notes.txt")
        try h.place(["type": "start", "spec": ["job": "noargv", "attempt": 1]])
        let good = try h.submit("good", argv: ["true"])
        #expect(try h.result(good)["exit_code"]?.intValue == 0)
        try h.waitFor("the rejections") { FileManager.default.fileExists(atPath: h.dir.rejected + "/0001-bad.json.reason") }
        let reason = try String(contentsOfFile: h.dir.rejected + "/0001-bad.json.reason", encoding: .utf8)
        #expect(reason.contains("malformed JSON at line 1, column 2"))
        let rejected = h.events().filter { $0["type"]?.stringValue == "rejected" }
        #expect(rejected.count == 2)
        #expect(rejected.contains { $0["reason"]?.stringValue?.contains("needs `argv`") == true })
    }

    /// A start the agent refuses names its attempt in the `rejected` event, so the coordinator
    /// ends that attempt; a resent start of an attempt the agent has names none (it goes on).
    @Test func aRefusedStartNamesItsAttemptAndAResentOneDoesNot() throws {
        let h = try AgentHarness()
        try h.start()
        let held = try h.submit("gpu-a", argv: ["sleep", "30"], extra: ["gpus": ["count": 1, "devices": ["0"]]])
        try h.waitFor("\(held) to run") { h.state(held) == .running }
        _ = try h.submit("gpu-b", argv: ["true"], extra: ["gpus": ["count": 1, "devices": ["0"]]])
        _ = try h.submit("gpu-a", argv: ["sleep", "30"], extra: ["gpus": ["count": 1, "devices": ["0"]]])
        try h.waitFor("two rejections") { h.events().filter { $0["type"]?.stringValue == "rejected" }.count == 2 }
        let rejected = h.events().filter { $0["type"]?.stringValue == "rejected" }
        let refused = try #require(rejected.first { $0["reason"]?.stringValue?.contains("GPU") == true }, "\(rejected)")
        #expect(refused["job"]?.stringValue == "gpu-b" && refused["attempt"]?.intValue == 1)
        let resent = try #require(rejected.first { $0["reason"]?.stringValue?.contains("already exists") == true }, "\(rejected)")
        #expect(resent["job"] == nil && resent["attempt"] == nil)
        #expect(h.state(AttemptID(job: "gpu-b", attempt: 1)) == nil, "a refused start leaves no attempt behind")
        try h.place(["type": "cancel", "job": "gpu-a"])
        try h.waitFor("\(held) to end") { h.state(held) == .cancelled }
    }

    @Test func agentKilledWhileJobsRunReAdoptsThem() throws {
        let h = try AgentHarness()
        try h.start()
        let ids = try (1...3).map { try h.submit("long\($0)", argv: ["sh", "-c", "sleep 1.5; echo done-\($0)"]) }
        for id in ids { try h.waitRunning(id) }
        let agent = try #require(h.agentPID())
        kill(agent, SIGKILL)
        try h.waitFor("the old agent to die") { kill(agent, 0) != 0 }
        try h.start()
        #expect(h.agentPID() != agent)
        for (i, id) in ids.enumerated() {
            let r = try h.result(id)
            #expect(r["reason"]?.stringValue == "exited" && r["exit_code"]?.intValue == 0)
            #expect(String(decoding: h.stdout(id), as: UTF8.self) == "done-\(i + 1)\n")
        }
        try h.waitFor("all transitions logged") {
            h.events().filter { $0["type"]?.stringValue == "transition" }.count == 12
        }
        // Each transition once: (job, n) pairs are unique.
        let pairs = h.events().compactMap { e -> String? in
            guard let j = e["job"]?.stringValue, let n = e["n"]?.intValue else { return nil }
            return "\(j)#\(n)"
        }
        #expect(Set(pairs).count == pairs.count)
    }

    @Test func killedShimMeansLostAndNoLeftovers() throws {
        let h = try AgentHarness()
        try h.start()
        let id = try h.submit("victim", shell: "(sleep 305 &); setsid -f sleep 306; sleep 300")
        try h.waitRunning(id)
        try h.waitFor("descendants") { h.cookiePIDs().count >= 3 }
        let shim = try #require(AttemptProcesses(transitionsFile: h.dir.transitionsFile(id)).shimPID)
        kill(shim, SIGKILL)
        let r = try h.result(id)
        #expect(r["reason"]?.stringValue == "lost")
        try h.waitFor("leftovers to be killed", timeout: 5) { h.cookiePIDs().isEmpty }
    }

    @Test func leaseExpiryOrphansJobsExceptThoseAskingToKeepRunning() throws {
        let h = try AgentHarness()
        try h.start()
        let lease = "{\"coordinator\":\"c1\",\"epoch\":1,\"time\":\(Date().timeIntervalSince1970),\"ttl\":1}"
        try AtomicFile.write(Array(lease.utf8), to: h.dir.leaseFile)
        let orphan = try h.submit("orphan", shell: "(sleep 307 &); sleep 300", extra: ["coordinator": "c1"])
        let keeper = try h.submit("keeper", argv: ["sleep", "300"], extra: ["coordinator": "c1", "keep_running": true])
        try h.waitRunning(orphan)
        try h.waitRunning(keeper)
        let r = try h.result(orphan, timeout: 10)
        #expect(r["reason"]?.stringValue == "orphaned")
        #expect(h.state(keeper) == .running)
        #expect(h.events().contains { $0["type"]?.stringValue == "lease_expired" })
        _ = try h.agent(["cancel", "keeper"])
        #expect(try h.result(keeper)["reason"]?.stringValue == "cancelled")
        #expect(h.cookiePIDs().isEmpty)
    }

    @Test func eachAttemptOutlivesItsCoordinatorForItsOwnLease() throws {
        let h = try AgentHarness()
        try h.start()
        // The coordinator's default lease is long; one job asked for a short one of its own.
        let lease = "{\"coordinator\":\"c1\",\"epoch\":1,\"time\":\(Date().timeIntervalSince1970),\"ttl\":3600}"
        try AtomicFile.write(Array(lease.utf8), to: h.dir.leaseFile)
        let short = try h.submit("short", argv: ["sleep", "300"], extra: ["coordinator": "c1", "lease": 1])
        let long = try h.submit("long", argv: ["sleep", "300"], extra: ["coordinator": "c1"])
        try h.waitRunning(short)
        try h.waitRunning(long)
        #expect(try h.result(short, timeout: 10)["reason"]?.stringValue == "orphaned")
        #expect(h.state(long) == .running, "an attempt without a lease of its own follows the coordinator's 1 h lease")
        try h.waitFor("the lease_expired event") { h.events().contains { $0["type"]?.stringValue == "lease_expired" } }
        let expired = h.events().filter { $0["type"]?.stringValue == "lease_expired" }
        #expect(expired.count == 1 && expired.first?["orphaned"]?.intValue == 1, "the expiry is one recorded event: \(expired)")
        let log = (try? String(contentsOfFile: h.dir.agentLog, encoding: .utf8)) ?? ""
        #expect(log.contains("lease of c1 expired (1 s without renewal); 1 attempt(s) cancelled as orphaned"))
        _ = try h.agent(["cancel", "long"])
        #expect(try h.result(long)["reason"]?.stringValue == "cancelled")
    }

    @Test func secondAgentOnTheSameRootReportsTheFirst() throws {
        let h = try AgentHarness()
        try h.start()
        let pid = try #require(h.agentPID())
        let r = try h.agent(["run"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("already running") && r.stdout.contains("pid \(pid)"))
    }

    /// `agent.lock` held by something that is not an agent (here this test process) is an
    /// error naming the lock, not "already running" with exit 0 and no heartbeat ever.
    @Test func aLockHeldByANonAgentIsAnErrorNotAlreadyRunning() throws {
        let h = try AgentHarness()
        try FileManager.default.createDirectory(atPath: h.root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let fd = open(h.dir.lockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        try #require(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        // The pid of a process that is gone, as an agent killed long ago would have left.
        _ = "999999\n".withCString { pwrite(fd, $0, 7, 0) }
        let refused = try h.agent(["run", "--detach"])
        #expect(refused.status != 0, "\(refused.stdout)")
        #expect(refused.stderr.contains("agent.lock is locked by a process that is not this root's running agent") && refused.stderr.contains("999999, which is gone"), "\(refused.stderr)")
        close(fd)
        try h.start()
        let again = try h.agent(["run", "--detach"])
        #expect(again.status == 0 && again.stdout.contains("already running"), "\(again.stdout) \(again.stderr)")
    }

    @Test func groupWritableRootIsRefused() throws {
        let h = try AgentHarness()
        try FileManager.default.createDirectory(atPath: h.root, withIntermediateDirectories: true)
        chmod(h.root, 0o770)
        let r = try h.agent(["run"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("writable by group or others") && r.stderr.contains("chmod 700"))
    }

    @Test func stateFilesAre0600AndFolders0700() throws {
        let h = try AgentHarness()
        try h.start()
        let id = try h.submit("modes", argv: ["true"])
        _ = try h.result(id)
        for path in [h.dir.heartbeatFile, h.dir.eventLog, h.dir.specFile(id), h.dir.resultFile(id), h.dir.stdoutFile(id), h.dir.transitionsFile(id)] {
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(path)")
        }
        for path in [h.root, h.dir.inbox, h.dir.attempts, h.dir.attemptDirectory(id)] {
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o700, "\(path)")
        }
    }

    @Test func tailFromASequence() throws {
        let h = try AgentHarness()
        try h.start()
        let id = try h.submit("t", argv: ["true"])
        _ = try h.result(id)
        try h.waitFor("events") { h.events().count >= 5 }
        let r = try h.agent(["tail", "--from", "3"])
        let seqs = r.stdout.split(separator: "\n").compactMap { (try? JSONParser.parse(String($0)))?["seq"]?.intValue }
        #expect(seqs.first == 3 && seqs == Array(3..<(3 + seqs.count)))
    }

    @Test func reapKillsCookieCarriersOfNoLiveAttempt() throws {
        let h = try AgentHarness()
        try h.start()
        // A process with this root's cookie that no attempt owns (as if left by a crash).
        let cookie = String(h.dir.cookie(AttemptID(job: "ghost", attempt: 1)).dropFirst("DROVER_COOKIE=".count))
        var env = ProcessInfo.processInfo.environment
        env["DROVER_COOKIE"] = cookie
        _ = try ChildProcess.run(["/usr/bin/setsid", "-f", "sleep", "308"], environment: env.map { "\($0.key)=\($0.value)" })
        try h.waitFor("the ghost") { !h.cookiePIDs().isEmpty }
        let dry = try h.agent(["reap", "--dry-run"])
        #expect(dry.stdout.contains("would kill") && dry.stdout.contains("ghost/1"))
        #expect(!h.cookiePIDs().isEmpty)
        let r = try h.agent(["reap"])
        #expect(r.stdout.contains("killed"))
        try h.waitFor("the ghost to die", timeout: 5) { h.cookiePIDs().isEmpty }
    }
}
