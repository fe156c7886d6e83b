import DroverCoordinator
import DroverCore
import Foundation
import Testing

/// docs/failures.md: "A partition longer than the lease" and "The coordinator is killed" (gone
/// longer than the lease): the agents' dead man's switch, with a short `--lease-ttl`.
extension TestbedSuite {
    @Suite("Failures: the lease")
    struct FailuresLeaseTests {
        @Test(.timeLimit(.minutes(3))) func aCoordinatorGoneLongerThanTheLeaseHasItsJobOrphanedAndRunAgainWhenItReturns() async throws {
            let mark = "/home/dtest/.drover-orphan-\(UInt32.random(in: 0...UInt32.max))"
            defer { _ = try? HostSide.sh("h1", "rm -f \(mark)") }
            try await CoordinatorFixture.with(deadAfter: 5, leaseTTL: 10) { f in
                let id = try f.submit(["sh", "-c", "if [ -e \(mark) ]; then echo second run; exit 0; fi; touch \(mark); sleep 3002; true"], options: ["--host", "h1"])
                try f.waitFor("the job to run", timeout: 30) { try f.job(id).state == .running }
                try f.waitFor("its process on h1", timeout: 10) { try HostSide.count("h1", "sleep 3002") == 1 }
                f.kill9()
                try f.waitFor("h1's agent to kill the job for want of a lease", timeout: 60) { try HostSide.count("h1", "sleep 3002") == 0 }
                let agentLog = try HostSide.sh("h1", "cat \(HostSide.root("h1"))/agent.log")
                #expect(agentLog.contains("s without renewal); 1 attempt(s) cancelled as orphaned"), "\(agentLog.suffix(800))")
                #expect(try f.job(id).state == .running, "no coordinator ran to record anything")

                try f.startAndWaitForHosts()
                let job = try #require(try f.waitFinal([id], timeout: 60).first)
                #expect(job.state == .succeeded, "\(job.reason ?? "")")
                #expect(job.attempt == 2 && job.losses == 1 && job.failures == 0, "queued again against --lost-retries: attempt \(job.attempt), losses \(job.losses)")
                #expect(try f.journal().attempt(id, 1)?.agentState == "orphaned")
                #expect(try f.events("lease_expired").contains { $0.host == "h1" && $0.message == "the agent on h1 lost its lease (1 attempt(s) orphaned)" },
                        "\(f.messages("lease_expired"))")
                #expect(try f.events("job", job: id).contains { $0.message.contains("orphaned") && $0.message.contains("host-loss retry 1 of 3") },
                        "\(f.messages("job", job: id))")
            }
        }

        @Test(.timeLimit(.minutes(4))) func aPartitionLongerThanTheLeaseOrphansTheReplacedAttemptAndTheHealReportsIt() async throws {
            try await CoordinatorFixture.with(deadAfter: 4, leaseTTL: 10) { f in
                let ids = try (0..<3).map { _ in try f.submit(["sh", "-c", "sleep 27; true"]) }
                let victim = try f.runningJob(on: "h3", among: ids)
                try f.waitFor("its process on h3", timeout: 10) { try HostSide.count("h3", "sleep 27") == 1 }
                try await Testbed.withHostPartitioned("h3") { heal in
                    try f.waitFor("the job of h3 to run elsewhere", timeout: 30) {
                        let job = try f.job(victim)
                        return job.attempt == 2 && job.host != "h3" && job.state == .running
                    }
                    try f.waitFor("h3's agent to kill the replaced attempt for want of a lease", timeout: 60) { try HostSide.count("h3", "sleep 27") == 0 }
                    try heal()
                    try f.waitFor("the heal to bring the orphaning in", timeout: 90) { try f.journal().attempt(victim, 1)?.agentState == "orphaned" }
                }
                #expect(try f.events("lease_expired").contains { $0.host == "h3" && $0.message.contains("(1 attempt(s) orphaned)") },
                        "\(f.messages("lease_expired"))")
                let late = try f.events("late_result", job: victim)
                #expect(late.contains { $0.message.contains("ended") && $0.message.contains("orphaned") && $0.message.contains("after it was replaced") }, "\(late.map(\.message))")
                let jobs = try f.waitFinal(ids, timeout: 90)
                #expect(jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map { $0.reason ?? "" })")
                for id in ids {
                    #expect(try f.events("job", job: id).filter { $0.state == "succeeded" }.count == 1, "job \(id) completed once")
                }
                #expect(try f.job(victim).attempt == 2, "the replacement completed the job")
                try f.waitHost("h3", "up", timeout: 60)
            }
        }
    }
}
