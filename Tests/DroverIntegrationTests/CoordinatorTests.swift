import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    @Suite("Coordinator")
    struct CoordinatorTests {
        @Test func runStreamsOutputAndExitsWithTheJobsCode() async throws {
            try await CoordinatorFixture.with { f in
                let r = try f.drover(["run", "--", "sh", "-c", "echo out-line; echo err-line >&2; exit 7"])
                #expect(r.status == 7, "\(r.stderr)")
                #expect(r.stdout == "out-line\n")
                #expect(r.stderr.contains("err-line"))
                let ok = try f.drover(["run", "--", "true"])
                #expect(ok.status == 0, "\(ok.stderr)")
            }
        }

        @Test func argvWithShellMetacharactersRunsByteForByte() async throws {
            try await CoordinatorFixture.with { f in
                let args = ["a b", "$HOME", "`id`", "$(id)", "'single'", "\"double\"", ";|&><*?[]{}~#!", "\\back\\slash", "ünïcødé ✓", "", "-n", "line\nbreak"]
                let r = try f.drover(["run", "--", "printf", "<%s>\\n"] + args)
                #expect(r.status == 0, "\(r.stderr)")
                #expect(r.stdout == args.map { "<\($0)>\n" }.joined())
            }
        }

        @Test func jobsSpreadOverTheHosts() async throws {
            try await CoordinatorFixture.with { f in
                let ids = try (0..<6).map { _ in try f.submit(["sh", "-c", "sleep 2; hostname"]) }
                let jobs = try f.waitFinal(ids, timeout: 60)
                #expect(jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map(\.reason))")
                #expect(Set(jobs.compactMap(\.host)) == ["h1", "h2", "h3"])
                // Two slots per host (2 CPUs): two jobs on each.
                for h in ["h1", "h2", "h3"] { #expect(jobs.filter { $0.host == h }.count == 2) }
            }
        }

        @Test func aHostPoweredOffHasItsJobsFinishElsewhere() async throws {
            try await CoordinatorFixture.with(deadAfter: 4) { f in
                // One job per host, so the others have free slots for the re-runs.
                let ids = try (0..<3).map { _ in try f.submit(["sh", "-c", "sleep 6; hostname"]) }
                let j = try f.journal()
                let onH3 = try f.runningJob(on: "h3", among: ids)
                try await Testbed.withHostKilled("h3") {
                    try f.waitFor("h3 down", timeout: 20) { try f.hostState("h3") == "down" }
                    let jobs = try f.waitFinal(ids, timeout: 60)
                    #expect(jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map(\.reason))")
                    let moved = try j.job(onH3)!
                    #expect(moved.host != "h3" && moved.attempt == 2 && moved.losses == 1)
                    let attempts = try j.attempts(of: onH3)
                    #expect(attempts.first?.state == "lost")
                }
            }
        }

        @Test func aPartitionedHostIsFencedWhenItComesBackAndEveryJobCompletesOnce() async throws {
            try await CoordinatorFixture.with(deadAfter: 4, leaseTTL: 60) { f in
                let ids = try (0..<3).map { _ in try f.submit(["sh", "-c", "echo $DROVER_COOKIE; sleep 12"]) }
                let j = try f.journal()
                let victim = try f.runningJob(on: "h3", among: ids)
                try await Testbed.withHostPartitioned("h3") { heal in
                    try f.waitFor("the job of h3 to run elsewhere", timeout: 30) {
                        let job = try j.job(victim)!
                        return job.attempt == 2 && job.host != "h3" && job.state == .running
                    }
                    // The original still runs on h3 (its agent keeps its lease for 60 s).
                    let before = try Testbed.script("exec", "h3", "sh", "-c", "ps -eo args | grep -cx 'sleep 12' || true")
                    #expect(Int(before.trimmingCharacters(in: .whitespacesAndNewlines)) == 1)
                    try heal()
                    try f.waitFor("the stale attempt to end on h3", timeout: 30) {
                        try j.attempt(victim, 1)?.agentState == "cancelled"
                    }
                    let after = try Testbed.script("exec", "h3", "sh", "-c", "ps -eo args | grep -cx 'sleep 12' || true")
                    #expect(Int(after.trimmingCharacters(in: .whitespacesAndNewlines)) == 0, "the replaced attempt's processes are gone from h3")
                }
                let jobs = try f.waitFinal(ids, timeout: 60)
                #expect(jobs.allSatisfy { $0.state == .succeeded })
                for id in ids {
                    let completions = try j.events(job: id).filter { $0.kind == "job" && $0.state == "succeeded" }
                    #expect(completions.count == 1, "job \(id) completed \(completions.count) times")
                }
                #expect(try j.events(job: victim).contains { $0.kind == "late_result" })
                #expect(try f.hostState("h3") == "up")
            }
        }

        @Test func kill9OfTheCoordinatorLosesNothing() async throws {
            try await CoordinatorFixture.with { f in
                let ids = try (0..<9).map { i in try f.submit(["sh", "-c", "sleep \(1 + i % 3); echo done-\(i)"]) }
                let j = try f.journal()
                try f.waitFor("some jobs running", timeout: 30) { try j.jobs(ids).filter { $0.state == .running }.count >= 3 }
                f.kill9()
                // Jobs keep running on the hosts while no coordinator runs.
                usleep(2_500_000)
                try f.startAndWaitForHosts()
                let jobs = try f.waitFinal(ids, timeout: 90)
                #expect(jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map { "\($0.id) \($0.state) \($0.reason ?? "")" })")
                for id in ids {
                    let completions = try j.events(job: id).filter { $0.kind == "job" && $0.state == "succeeded" }
                    #expect(completions.count == 1)
                    // Attempts that kept running were adopted, not re-run.
                    #expect(try j.attempts(of: id).count == 1)
                }
                #expect(try j.meta("epoch") == "2")
            }
        }

        @Test func cancelKillsADoubleForkedChildOnTheHost() async throws {
            try await CoordinatorFixture.with { f in
                let marker = "drover-escape-\(UInt32.random(in: 0...UInt32.max))"
                // The child double-forks into its own session, under a name of its own.
                let id = try f.submit(["sh", "-c", "ln -sf /bin/sleep /tmp/\(marker) && (setsid /tmp/\(marker) 300 &) ; sleep 300"], options: ["--host", "h2"])
                let j = try f.journal()
                try f.waitFor("the job to run", timeout: 30) { try j.job(id)?.state == .running }
                try f.waitFor("the escaped child to exist", timeout: 10) {
                    (try? Testbed.script("exec", "h2", "sh", "-c", "ps -eo args | grep -c '^/tmp/\(marker)' || true"))?.trimmingCharacters(in: .whitespacesAndNewlines) == "1"
                }
                let r = try f.drover(["cancel", String(id)])
                #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
                #expect(try j.job(id)?.state == .cancelled)
                let left = try Testbed.script("exec", "h2", "sh", "-c", "ps -eo args | grep -c '^/tmp/\(marker)' || true")
                #expect(left.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "the double-forked child is gone when cancel returns")
            }
        }

        @Test func aKilledAgentIsRestartedAndItsJobsAreNotRunAgain() async throws {
            try await CoordinatorFixture.with(deadAfter: 10) { f in
                let id = try f.submit(["sh", "-c", "sleep 8; echo finished"], options: ["--host", "h2"])
                let j = try f.journal()
                try f.waitFor("the job to run", timeout: 30) { try j.job(id)?.state == .running }
                try Testbed.script("exec", "h2", "sh", "-c", "kill -9 $(head -c 32 /home/dtest/.drover/h2/agent.lock)")
                let jobs = try f.waitFinal([id], timeout: 60)
                #expect(jobs.first?.state == .succeeded, "\(jobs.first?.reason ?? "")")
                #expect(try j.attempts(of: id).count == 1, "the job kept its first attempt")
                let h2 = try j.events().filter { $0.kind == "host" && $0.host == "h2" && $0.state == "down" }
                #expect(h2.isEmpty, "h2 never went down: \(h2.map(\.message))")
                #expect(try j.events().contains { $0.kind == "agent" && $0.host == "h2" && $0.message.contains("started") })
            }
        }

        /// Found by the soak (docs/reliability.md): an agent whose state directory did not survive
        /// a power-off (a tmpfs root, a wiped disk) starts a new event log; the coordinator used
        /// to skip its events (their seq were already "applied") and wait forever for the lost
        /// attempts, so the host stayed `reconciling` and never ran a job again.
        @Test func aHostWhoseAgentStateWasWipedRunsJobsAgain() async throws {
            try await CoordinatorFixture.with { f in
                let j = try f.journal()
                let first = try f.submit(["true"], options: ["--host", "h2"])
                _ = try f.waitFinal([first], timeout: 30)
                let id = try f.submit(["sh", "-c", "sleep 600"], options: ["--host", "h2"])
                try f.waitFor("the job to run", timeout: 30) { try j.job(id)?.state == .running }
                try await Testbed.withHostKilled("h2") {
                    try f.waitFor("h2 down", timeout: 30) { try f.hostState("h2") == "down" }
                    _ = try Testbed.run("/bin/rm", ["-rf", (try Testbed.root()) + "/hosts/h2/home/.drover"])
                }
                try f.waitFor("the job to run again on h2", timeout: 60) {
                    let job = try j.job(id)
                    return job?.attempt == 2 && job?.state == .running
                }
                #expect(try j.events().contains { $0.kind == "host" && $0.host == "h2" && $0.message.contains("new event log") })
                #expect(try j.attempt(id, 1)?.agentState == "lost")
                let after = try f.submit(["echo", "h2 works"], options: ["--host", "h2"])
                #expect(try f.waitFinal([after], timeout: 30).first?.state == .succeeded)
            }
        }

        @Test func ctrlCOnRunCancelsTheJobWhenAskedTo() async throws {
            try await CoordinatorFixture.with { f in
                let marker = "drover-ctrlc-\(UInt32.random(in: 0...UInt32.max))"
                let run = try f.spawnDrover(["run", "--on-interrupt", "cancel", "--name", marker, "--", "sh", "-c", "echo started; sleep 300"])
                let j = try f.journal()
                try f.waitFor("the job to run", timeout: 30) { try j.resolve(marker)?.state == .running }
                kill(run, SIGINT)
                var status: Int32 = 0
                try f.waitFor("drover run to exit", timeout: 60) { waitpid(run, &status, WNOHANG) == run }
                #expect((status >> 8) & 0xff == 130)
                #expect(try j.resolve(marker)?.state == .cancelled)
            }
        }
        @Test func keepOriginalKeepsTheReturningAttemptAndCancelsTheReplacement() async throws {
            try await CoordinatorFixture.with(deadAfter: 4, leaseTTL: 60, extra: ["--stale-policy", "keep-original"]) { f in
                let ids = try (0..<3).map { _ in try f.submit(["sh", "-c", "sleep 14"]) }
                let j = try f.journal()
                let victim = try f.runningJob(on: "h3", among: ids)
                try await Testbed.withHostPartitioned("h3") { heal in
                    try f.waitFor("the job of h3 to run elsewhere", timeout: 30) {
                        let job = try j.job(victim)!
                        return job.attempt == 2 && job.state == .running
                    }
                    try heal()
                    try f.waitFor("the replacement to be cancelled", timeout: 30) { try j.attempt(victim, 2)?.agentState == "cancelled" }
                }
                let jobs = try f.waitFinal(ids, timeout: 60)
                #expect(jobs.allSatisfy { $0.state == .succeeded })
                let kept = try j.job(victim)!
                #expect(kept.attempt == 1 && kept.host == "h3", "the original attempt completed the job")
                #expect(try j.events(job: victim).filter { $0.kind == "job" && $0.state == "succeeded" }.count == 1)
            }
        }
    }
}
