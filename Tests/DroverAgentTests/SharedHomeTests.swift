import DroverCore
import Foundation
import Testing
@testable import DroverAgent

/// A state directory on a home shared by several machines (NFS): `owner.json` names the
/// machine whose agent runs there; another machine's agent refuses it while that one beats,
/// and takes it over (touching none of its processes) once it looks dead.
@Suite("Shared home", .serialized)
struct SharedHomeTests {
    /// Writes `owner.json` and a heartbeat as an agent of another machine would have.
    func pretendOtherMachine(_ a: AgentHarness, heartbeatAge: Double, machine: String = "0ther0machine0id0000000000000000") throws {
        try FileManager.default.createDirectory(atPath: a.root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let t = Date().timeIntervalSince1970 - heartbeatAge
        try AtomicFile.write(Array("{\"format\":1,\"machine_id\":\"\(machine)\",\"boot_id\":\"b\",\"hostname\":\"box9\",\"pid\":4242,\"since\":\(t - 60)}\n".utf8), to: a.dir.ownerFile)
        try AtomicFile.write(Array("{\"format\":1,\"pid\":4242,\"seq\":9,\"time\":\(t),\"interval\":1,\"machine_id\":\"\(machine)\"}\n".utf8), to: a.dir.heartbeatFile)
    }

    /// `Ownership.claim` for every kind of previous owner, without starting an agent.
    @Test func claimDecidesByMachineBootAndHostName() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("drover-owner-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = StateDirectory(root: root)
        try dir.prepare()
        let me = MachineIdentity(machineID: "m1", bootID: "b1", hostname: "box1")
        func owner(_ m: String, _ b: String, _ h: String, beatAgo: Double?) throws {
            let now = Date().timeIntervalSince1970
            try StateOwner(machineID: m, bootID: b, hostname: h, pid: 1, since: now - 600).write(dir)
            unlink(dir.heartbeatFile)
            if let age = beatAgo {
                try AtomicFile.write(Array("{\"time\":\(now - age),\"interval\":1,\"machine_id\":\"\(m)\",\"hostname\":\"\(h)\"}\n".utf8), to: dir.heartbeatFile)
            }
        }
        #expect(try Ownership.claim(dir, me: me) == .ours, "no record yet")
        #expect(StateOwner.read(dir)?.isSameSystem(as: me) == true)
        try owner("m1", "b1", "box1", beatAgo: 0.5)
        #expect(try Ownership.claim(dir, me: me) == .ours, "this very system (an agent restart)")
        try owner("m2", "b9", "box2", beatAgo: 1)
        #expect(throws: AgentError.self) { try Ownership.claim(dir, me: me) }
        #expect(StateOwner.read(dir)?.machineID == "m2", "a refused claim writes nothing")
        try owner("m1", "b0", "box1", beatAgo: 1)
        #expect(throws: AgentError.self, "same machine id, another boot, beating: a clone of this image") { try Ownership.claim(dir, me: me) }
        try owner("m1", "b1", "box2", beatAgo: 1)
        #expect(throws: AgentError.self, "same kernel, another host name, beating: a container or testbed host") { try Ownership.claim(dir, me: me) }
        try owner("m2", "b9", "box2", beatAgo: 60)
        guard case .takenOver(let from) = try Ownership.claim(dir, me: me) else { Issue.record("a dead owner is taken over"); return }
        #expect(from.hostname == "box2")
        try owner("m1", "b0", "box1", beatAgo: nil)
        guard case .takenOver = try Ownership.claim(dir, me: me) else { Issue.record("an earlier boot is taken over"); return }
        try owner("m1", "b1", "box-old", beatAgo: 60)
        #expect(try Ownership.claim(dir, me: me) == .ours, "renamed: its processes are here, re-adopted")
    }

    @Test func theOwnerRecordNamesThisMachineAndTheHeartbeatCarriesIt() throws {
        let a = try AgentHarness()
        try a.start()
        let owner = try #require(readJSON(a.dir.ownerFile))
        let me = MachineIdentity.current
        #expect(owner["machine_id"]?.stringValue == me.machineID)
        #expect(owner["boot_id"]?.stringValue == me.bootID)
        #expect(owner["hostname"]?.stringValue == me.hostname)
        if let id = try? String(contentsOfFile: "/etc/machine-id", encoding: .utf8).split(separator: "\n").first {
            #expect(me.machineID == String(id))
        }
        var st = stat()
        #expect(stat(a.dir.ownerFile, &st) == 0 && st.st_mode & 0o777 == 0o600)
        try a.waitFor("a heartbeat naming the machine") { readJSON(a.dir.heartbeatFile)?["machine_id"]?.stringValue == me.machineID }
        #expect(readJSON(a.dir.heartbeatFile)?["coordinators"]?.arrayValue?.count == 0)
    }

    @Test func aRootAnotherLiveMachineRunsIsRefusedWithOneLine() throws {
        let a = try AgentHarness()
        try pretendOtherMachine(a, heartbeatAge: 1)
        let run = try a.agent(["run", "--detach"])
        #expect(run.status == 1)
        let lines = run.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(run.stderr)")
        #expect(run.stderr.contains("refusing the state directory \(a.root)") && run.stderr.contains("box9") && run.stderr.contains("~/.drover/%h"), "\(run.stderr)")
        #expect(a.agentPID() == 4242, "the other machine's heartbeat is untouched")
        #expect(PIDLock.holder(a.dir.lockFile) == nil, "no agent started")
        // Nor does it take work: nothing is placed in the inbox.
        let submit = try a.agent(["submit"], stdin: "{\"job\":\"j\",\"attempt\":1,\"argv\":[\"true\"]}")
        #expect(submit.status == 1 && submit.stderr.contains("box9"), "\(submit.stderr)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: a.dir.inbox)) ?? []).filter { $0.hasSuffix(".json") }.isEmpty)
    }

    @Test func aRootWhoseOwnerLooksDeadIsTakenOverAndItsAttemptsAreLostUntouched() throws {
        let a = try AgentHarness()
        try pretendOtherMachine(a, heartbeatAge: 120)
        // An attempt that was running on the other machine; its pid here is a process of ours
        // that must survive (on this machine the number means something else).
        let bystander = Process()
        bystander.executableURL = URL(fileURLWithPath: "/bin/sleep")
        bystander.arguments = ["60"]
        try bystander.run()
        defer { bystander.terminate() }
        let pid = bystander.processIdentifier
        let id = AttemptID(job: "theirs", attempt: 1)
        try FileManager.default.createDirectory(atPath: a.dir.attemptDirectory(id), withIntermediateDirectories: true)
        try Data("{\"job\":\"theirs\",\"attempt\":1,\"argv\":[\"sleep\",\"600\"]}\n".utf8).write(to: URL(fileURLWithPath: a.dir.specFile(id)))
        try Data("""
            {"n":1,"state":"accepted","time":1}
            {"n":2,"state":"starting","time":2,"shim_pid":\(pid),"shim_start":"1"}
            {"n":3,"state":"running","time":3,"pid":\(pid)}

            """.utf8).write(to: URL(fileURLWithPath: a.dir.transitionsFile(id)))
        try a.start()
        let result = try a.result(id)
        #expect(a.state(id) == .lost)
        #expect(result["error"]?.stringValue?.contains("box9") == true, "\(result.jsonText)")
        #expect(result["leftovers_killed"]?.intValue == 0)
        #expect(kill(pid, 0) == 0, "no local process was touched")
        #expect(readJSON(a.dir.ownerFile)?["machine_id"]?.stringValue == MachineIdentity.current.machineID)
        // The event log is appended in group commits: the event may follow the result.
        try a.waitFor("the owner_changed event") { a.events().contains { $0["type"]?.stringValue == "owner_changed" } }
        let changed = a.events().first { $0["type"]?.stringValue == "owner_changed" }
        #expect(changed?["previous_hostname"]?.stringValue == "box9")
        #expect(changed?["machine_id"]?.stringValue == MachineIdentity.current.machineID)
    }

    @Test func aRunningAgentStopsWhenAnotherMachineTakesItsRootOver() throws {
        let a = try AgentHarness()
        try a.start()
        let id = try a.submit("stays", argv: ["sleep", "30"])
        try a.waitRunning(id)
        // The shim writes `running` to the attempt's transitions; the agent logs it as an event
        // a moment later: count the events once it has (a loaded machine shows the gap).
        try a.waitFor("the running transition in the event log", timeout: 10) {
            a.events().contains { $0["job"]?.stringValue == "stays" && $0["state"]?.stringValue == "running" }
        }
        let seq = a.events().count
        try AtomicFile.write(Array("{\"format\":1,\"machine_id\":\"0ther\",\"boot_id\":\"b\",\"hostname\":\"box9\",\"pid\":1,\"since\":\(Date().timeIntervalSince1970)}\n".utf8), to: a.dir.ownerFile)
        try a.waitFor("the agent to stop", timeout: 10) { PIDLock.holder(a.dir.lockFile) == nil }
        #expect(a.events().count == seq, "it wrote no more events")
        #expect(a.state(id) == .running, "its job is left to its shim")
        let log = (try? String(contentsOfFile: a.dir.agentLog, encoding: .utf8)) ?? ""
        #expect(log.contains("now belongs to box9"), "\(log.suffix(500))")
        // Clean up as the owner again.
        try FileManager.default.removeItem(atPath: a.dir.ownerFile)
        try a.start()
    }
}

/// Several coordinators share an agent: each has its own lease file, which covers only its
/// own attempts, and `stop --coordinator` lets one leave without disturbing the others.
@Suite("Several coordinators", .serialized)
struct SeveralCoordinatorsTests {
    func lease(_ a: AgentHarness, _ coordinator: String, ttl: Double) throws {
        try FileManager.default.createDirectory(atPath: a.dir.leases, withIntermediateDirectories: true)
        try AtomicFile.write(Array("{\"coordinator\":\"\(coordinator)\",\"epoch\":1,\"time\":\(Date().timeIntervalSince1970),\"ttl\":\(ttl)}\n".utf8),
                             to: a.dir.leaseFile(coordinator: coordinator))
    }

    @Test func eachLeaseCoversOnlyItsOwnCoordinatorsAttempts() throws {
        let a = try AgentHarness()
        try a.start()
        try lease(a, "cafe0001", ttl: 1)
        try lease(a, "cafe0002", ttl: 60)
        let mine = try a.submit("cafe0001-1", argv: ["sleep", "60"], extra: ["coordinator": "cafe0001"])
        let theirs = try a.submit("cafe0002-1", argv: ["sleep", "60"], extra: ["coordinator": "cafe0002"])
        try a.waitRunning(mine)
        try a.waitRunning(theirs)
        try a.waitFor("cafe0001's attempt orphaned", timeout: 10) { a.state(mine) == .orphaned }
        #expect(a.state(theirs) == .running)
        // The shim's orphaned transition and the agent's event of the expiry are written by two
        // processes: the event may come a moment after the state.
        var expired: [JSONNode] = []
        try a.waitFor("the lease_expired event", timeout: 5) {
            expired = a.events().filter { $0["type"]?.stringValue == "lease_expired" }
            return !expired.isEmpty
        }
        #expect(expired.map { $0["coordinator"]?.stringValue } == ["cafe0001"])
        try a.waitFor("the heartbeat to list the live lease", timeout: 5) {
            readJSON(a.dir.heartbeatFile)?["coordinators"]?.arrayValue?.compactMap(\.stringValue) == ["cafe0002"]
        }
    }

    @Test func stopForOneCoordinatorKeepsTheAgentThatServesAnother() throws {
        let a = try AgentHarness()
        try a.start()
        try lease(a, "cafe0001", ttl: 60)
        try lease(a, "cafe0002", ttl: 60)
        let mine = try a.submit("cafe0001-1", argv: ["sleep", "60"], extra: ["coordinator": "cafe0001"])
        let theirs = try a.submit("cafe0002-1", argv: ["sleep", "60"], extra: ["coordinator": "cafe0002"])
        try a.waitRunning(mine)
        try a.waitRunning(theirs)
        let pid = try #require(PIDLock.holder(a.dir.lockFile))
        let first = try a.agent(["stop", "--coordinator", "cafe0001", "--kill-jobs", "--keep-if-served"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.hasPrefix("agent kept running: it serves 1 other coordinator (cafe0002"), "\(first.stdout)")
        #expect(first.stdout.contains("coordinator cafe0001: 1 attempt(s) cancelled"), "\(first.stdout)")
        #expect(a.state(mine) == .cancelled)
        #expect(a.state(theirs) == .running)
        #expect(PIDLock.holder(a.dir.lockFile) == pid, "the agent still runs")
        #expect(!FileManager.default.fileExists(atPath: a.dir.leaseFile(coordinator: "cafe0001")), "its lease is withdrawn")

        let last = try a.agent(["stop", "--coordinator", "cafe0002", "--keep-if-served"])
        #expect(last.status == 0 && last.stdout.hasPrefix("drover-agent stopped"), "\(last.stdout)\(last.stderr)")
        #expect(PIDLock.holder(a.dir.lockFile) == nil)
        #expect(a.state(theirs) == .running, "without --kill-jobs its job keeps running under its shim")
    }
}
