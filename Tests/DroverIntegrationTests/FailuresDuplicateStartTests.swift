import DroverCoordinator
import DroverCore
import Foundation
import Testing

/// docs/failures.md, "The coordinator is killed": a start sent again (after a restart or a
/// reconnect) that the agent already has is rejected, and the coordinator ignores the rejection.
extension TestbedSuite {
    @Suite("Failures: duplicate starts")
    struct FailuresDuplicateStartTests {
        @Test func aStartTheAgentAlreadyHasIsRejectedAndTheCoordinatorIgnoresTheRejection() async throws {
            let mark = "/home/dtest/.drover-dup-\(UInt32.random(in: 0...UInt32.max))"
            defer { _ = try? HostSide.sh("h2", "rm -f \(mark)") }
            try await CoordinatorFixture.with { f in
                let id = try f.submit(["sh", "-c", "echo ran >> \(mark)"], options: ["--host", "h2"])
                #expect(try f.waitFinal([id], timeout: 30).first?.state == .succeeded)
                let root = HostSide.root("h2")
                let c = try await Testbed.connect("h2")
                defer { c.close() }
                // The start of attempt 1 once more, from the spec the agent accepted, as the coordinator sends it.
                let resend = try await c.run("""
                    cd \(root) && a=$(readlink /proc/$(head -c 32 agent.lock)/exe) && d=$(ls -d attempts/*-\(id)) && \
                    printf '{"type":"start","spec":%s}\\n' "$(tr -d '\\n' < "$d/1/spec.json")" | "$a" send --root \(root)
                    """)
                #expect(resend.status == .exited(0), "\(resend.stdoutText)\(resend.stderrText)")
                try f.waitFor("the agent to reject the duplicate", timeout: 20) {
                    try HostSide.sh("h2", "cat \(root)/inbox/rejected/*.reason 2>/dev/null").contains("already exists; attempts are never reused")
                }
                // Events arrive in order: once a later job on h2 has ended, the coordinator has read the rejection.
                let later = try f.submit(["true"], options: ["--host", "h2"])
                #expect(try f.waitFinal([later], timeout: 30).first?.state == .succeeded)
                #expect(try f.events("rejected").isEmpty, "\(f.messages("rejected"))")
                #expect(try HostSide.sh("h2", "cat \(mark)") == "ran", "the job ran once")
                let job = try f.job(id)
                #expect(job.state == .succeeded && job.attempt == 1)
                #expect(try f.journal().attempts(of: id).count == 1)
                #expect(!f.log.contains("rejected"), "\(f.log.suffix(1500))")
            }
        }
    }
}
