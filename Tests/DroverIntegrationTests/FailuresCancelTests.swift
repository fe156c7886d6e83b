import DroverCoordinator
import DroverCore
import Foundation
import Testing

/// docs/failures.md: "`drover cancel`" (its edge cases) and "The agent is killed" (an agent
/// that cannot be started again, one whose binary was removed).
extension TestbedSuite {
    @Suite("Failures: cancel and the agent")
    struct FailuresCancelTests {
        @Test(.timeLimit(.minutes(3))) func cancelOfASilentHostsJobReturnsWhenTheHostGoesDownAndTheJobDiesWhenItReturns() async throws {
            try await CoordinatorFixture.with(deadAfter: 8) { f in
                let id = try f.submit(["sleep", "3004"], options: ["--host", "h2"])
                try f.waitFor("the job to run", timeout: 30) { try f.job(id).state == .running }
                try f.waitFor("its process on h2", timeout: 10) { try HostSide.count("h2", "sleep 3004") == 1 }
                try await HostSide.withAgentStopped("h2") {
                    let noWait = try f.drover(["cancel", "--no-wait", String(id)])
                    #expect(noWait.status == 0, "\(noWait.stdout)\(noWait.stderr)")
                    let after = try f.job(id)
                    #expect(after.cancelRequested && after.state == .running, "--no-wait returns before the cancel is confirmed: \(after.state)")
                    let r = try f.drover(["cancel", "--timeout", "60", String(id)])
                    #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
                    let job = try f.job(id)
                    #expect(job.state == .cancelled && job.reason == "cancelled; host h2 went down (its attempt is killed when it comes back)", "\(job.state) \(job.reason ?? "")")
                    #expect(try f.events("host").contains { $0.host == "h2" && $0.state == "down" }, "the cancel ended when h2 went down")
                    #expect(try HostSide.count("h2", "sleep 3004") == 1, "the silent host's job still runs")
                }
                try f.waitFor("the attempt to be killed once h2 answers again", timeout: 60) { try HostSide.count("h2", "sleep 3004") == 0 }
                try f.waitHost("h2", "up", timeout: 60)
                let job = try f.job(id)
                #expect(job.state == .cancelled && job.attempt == 1, "\(job.state) attempt \(job.attempt)")
            }
        }

        @Test(.timeLimit(.minutes(3))) func aJobThatEndsBeforeItsCancelLandsKeepsItsSuccessAndAFailureEndsCancelled() async throws {
            try await CoordinatorFixture.with(deadAfter: 30) { f in
                let ok = try f.submit(["sh", "-c", "sleep 4; echo done"], options: ["--host", "h2"])
                let bad = try f.submit(["sh", "-c", "sleep 4; exit 3"], options: ["--host", "h2"])
                try f.waitFor("both jobs to run", timeout: 30) { try [ok, bad].allSatisfy { try f.job($0).state == .running } }
                let root = HostSide.root("h2")
                try await HostSide.withAgentStopped("h2") {
                    let r = try f.drover(["cancel", "--no-wait", String(ok), String(bad)])
                    #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
                    // Both end by themselves while their agent cannot act on the cancel.
                    try f.waitFor("both jobs to end on h2", timeout: 30) {
                        try HostSide.sh("h2", "ls \(root)/attempts/*-\(ok)/1/result.json \(root)/attempts/*-\(bad)/1/result.json 2>/dev/null | wc -l") == "2"
                    }
                }
                let jobs = try f.waitFinal([ok, bad], timeout: 90)
                #expect(jobs.first?.state == .succeeded, "exit 0 keeps it succeeded: \(jobs.first?.reason ?? "")")
                #expect(jobs.last?.state == .cancelled && jobs.last?.reason == "cancelled by user (exited)" && jobs.last?.exitCode == 3,
                        "\(String(describing: jobs.last?.state)) \(jobs.last?.reason ?? "")")
            }
        }

        @Test(.timeLimit(.minutes(3))) func anAgentThatCannotBeStartedAgainTakesItsHostDownAndItsJobsRunElsewhere() async throws {
            let holder = "/tmp/drover-lock-holder-\(UInt32.random(in: 0...UInt32.max))"
            let root = HostSide.root("h2")
            func release() {
                _ = try? HostSide.sh("h2", "[ -s \(holder) ] && kill -9 $(ps -eo pid=,pgid= | awk -v g=$(cat \(holder)) '$2 == g { print $1 }'); rm -f \(holder)")
            }
            defer { release() }
            try await CoordinatorFixture.with(deadAfter: 6) { f in
                let ids = try (0..<3).map { _ in try f.submit(["sh", "-c", "sleep 12; hostname"]) }
                let victim = try f.runningJob(on: "h2", among: ids)
                // A process that is no agent takes the agent's lock as soon as the agent dies, so no agent can start there.
                _ = try HostSide.sh("h2", "pid=$(head -c 32 \(root)/agent.lock); setsid sh -c 'echo $$ > \(holder); exec flock \(root)/agent.lock sleep 3005' </dev/null >/dev/null 2>&1 & sleep 0.2; kill -9 $pid")
                try f.waitHost("h2", "down", timeout: 40)
                #expect(try f.journal().attempt(victim, 1)?.state == "lost")
                // While the lock is held no agent starts: `run` names the lock and its holder, and the
                // coordinator logs that at its tries; only its own re-check of a down host can find
                // that the agent may start again.
                try f.waitFor("the coordinator to log why h2's agent cannot start", timeout: 30) {
                    let log = f.log
                    guard let down = log.range(of: "h2: suspect → down") else { return false }
                    return log[down.upperBound...].contains("agent.lock is locked by a process that is not this root's running agent")
                }
                release()
                #expect(try HostSide.count("h2", "sleep 3005") == 0, "the lock is free again")
                let jobs = try f.waitFinal(ids, timeout: 90)
                #expect(jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map { $0.reason ?? "" })")
                let moved = try f.job(victim)
                #expect(moved.attempt == 2 && moved.host != "h2" && moved.losses == 1, "attempt \(moved.attempt) on \(moved.host ?? "")")
                try f.waitHost("h2", "up", timeout: 60)
            }
        }

        @Test(.timeLimit(.minutes(2))) func anAgentWhoseBinaryWasRemovedIsUploadedAgainAndItsJobIsNotRunAgain() async throws {
            try await CoordinatorFixture.with(deadAfter: 10) { f in
                let id = try f.submit(["sh", "-c", "sleep 8; echo finished"], options: ["--host", "h2"])
                try f.waitFor("the job to run", timeout: 30) { try f.job(id).state == .running }
                let root = HostSide.root("h2")
                let before = try HostSide.agentPID("h2")
                _ = try HostSide.sh("h2", "rm -f \(root)/bin/drover-agent-* && kill -9 \(before)")
                let job = try #require(try f.waitFinal([id], timeout: 60).first)
                #expect(job.state == .succeeded, "\(job.reason ?? "")")
                #expect(try f.journal().attempts(of: id).count == 1, "the job kept its first attempt")
                #expect(!(try f.events("host").contains { $0.host == "h2" && $0.state == "down" }))
                #expect(try HostSide.agentPID("h2") != before)
                #expect(try HostSide.sh("h2", "ls \(root)/bin").contains("drover-agent-"), "the binary was uploaded again")
            }
        }

        @Test(.timeLimit(.minutes(2))) func aKilledShimLosesItsAttemptAndTheJobRunsAgainWhileTheHostStaysUp() async throws {
            let mark = "/home/dtest/.drover-shim-\(UInt32.random(in: 0...UInt32.max))"
            defer { _ = try? HostSide.sh("h2", "rm -f \(mark)") }
            try await CoordinatorFixture.with(deadAfter: 10) { f in
                let id = try f.submit(["sh", "-c", "if [ -e \(mark) ]; then echo again; exit 0; fi; touch \(mark); sleep 3006; true"], options: ["--host", "h2"])
                try f.waitFor("the job to run", timeout: 30) { try f.job(id).state == .running }
                try f.waitFor("its process on h2", timeout: 10) { try HostSide.count("h2", "sleep 3006") == 1 }
                // The `starting` transition names the shim (`shim_pid`).
                let shim = try HostSide.sh("h2", "grep -oE '\"shim_pid\": *[0-9]+' \(HostSide.root("h2"))/attempts/*-\(id)/1/transitions | head -1 | grep -oE '[0-9]+$'")
                try #require(Int(shim) != nil, "no shim pid in the transitions: '\(shim)'")
                _ = try HostSide.sh("h2", "kill -9 \(shim)")
                let job = try #require(try f.waitFinal([id], timeout: 60).first)
                #expect(job.state == .succeeded && job.attempt == 2 && job.losses == 1, "\(job.state) attempt \(job.attempt) \(job.reason ?? "")")
                #expect(try f.journal().attempt(id, 1)?.agentState == "lost")
                #expect(f.messages("job", job: id).contains { $0.contains("queued again: attempt 1 lost") && $0.hasSuffix("on h2 (host-loss retry 1 of 3)") }, "\(f.messages("job", job: id))")
                #expect(try HostSide.count("h2", "sleep 3006") == 0, "what the shim left is killed")
                #expect(!(try f.events("host").contains { $0.host == "h2" && ($0.state == "down" || $0.state == "suspect") }), "h2 stayed up: \(f.messages("host"))")
            }
        }
    }
}
