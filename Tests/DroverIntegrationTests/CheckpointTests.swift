import DroverCoordinator
import Foundation
import Testing

extension TestbedSuite {
    /// Checkpoint/restart on the testbed (docs/checkpoints.md): real jobs, real snapshots
    /// pulled over SFTP into the coordinator's store, a real power-off.
    @Suite("Checkpoints")
    struct CheckpointTests {
        /// Counts to 30, one step every 0.5 s, keeping its count in progress.json (write + rename).
        static let counter = """
            n=0; [ -f progress.json ] && n=$(cat progress.json)
            echo "start $n ${DROVER_CHECKPOINT:-fresh} ${DROVER_CHECKPOINT_ATTEMPT:-none}"
            while [ "$n" -lt 30 ]; do n=$((n+1)); echo "$n" > progress.tmp; mv progress.tmp progress.json; sleep 0.5; done
            echo "done $n"
            """

        @Test func aJobWhoseHostIsPoweredOffResumesElsewhereFromItsSnapshot() async throws {
            try await CoordinatorFixture.with(deadAfter: 4) { f in
                let id = try f.submit(["sh", "-c", Self.counter], options: ["--checkpoint", "progress.json", "--checkpoint-every", "1s"])
                let j = try f.journal()
                var host = ""
                try f.waitFor("job \(id) running", timeout: 30) {
                    host = try j.job(id)?.host ?? ""
                    return try j.job(id)?.state == .running
                }
                // Wait for a stored snapshot with some progress in it.
                var saved = 0
                try f.waitFor("a snapshot of job \(id) with a count of 4 or more", timeout: 30) {
                    guard let c = try j.checkpoint(of: id), let file = c.files.first(where: { $0.path == "progress.json" }) else { return false }
                    saved = Int((try? String(contentsOfFile: j.checkpointStore + "/" + file.sha256, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
                    return saved >= 4
                }
                try await Testbed.withHostKilled(host) {
                    let job = try f.waitFinal([id], timeout: 90)[0]
                    #expect(job.state == .succeeded, "\(job.reason ?? "")")
                    #expect(job.attempt == 2 && job.host != host && job.losses == 1)
                    let out = try f.drover(["logs", String(id)]).stdout
                    let start = out.split(separator: "\n").first.map(String.init) ?? ""
                    let words = start.split(separator: " ")
                    #expect(words.count == 4 && words[0] == "start" && words[2] == "restored" && words[3] == "1", "\(out)")
                    let resumedAt = Int(words.count > 1 ? words[1] : "") ?? 0
                    #expect(resumedAt >= saved && resumedAt < 30, "resumed from \(resumedAt); \(saved) was stored before the power-off")
                    #expect(out.contains("done 30"))
                    let events = try j.events(job: id)
                    #expect(events.contains { $0.kind == "checkpoint" && $0.state == "restored" && $0.attempt == 2 })
                }
            }
        }

        @Test func anExitWithTheCheckpointCodeRestartsAtOnceOnTheSameHostWithoutCountingAFailure() async throws {
            try await CoordinatorFixture.with { f in
                // The first attempt waits for a go file on its host, then saves and asks for a restart.
                let go = "/tmp/go-\(UInt32.random(in: 1...UInt32.max))"
                let script = """
                    if [ "$DROVER_CHECKPOINT" = restored ]; then echo "resumed from $(cat state/s.txt) of attempt $DROVER_CHECKPOINT_ATTEMPT"; exit 0; fi
                    while [ ! -e \(go) ]; do sleep 0.1; done
                    mkdir -p state; echo 41 > state/s.tmp; mv state/s.tmp state/s.txt; exit 85
                    """
                let id = try f.submit(["sh", "-c", script], options: ["--checkpoint", "state/*.txt", "--checkpoint-exit-code", "85"])
                var first: String?
                try f.waitFor("attempt 1 running", timeout: 30) {
                    first = try f.journal().attempts(of: id).first { $0.state == "running" }?.host
                    return first != nil
                }
                // A job on the same host makes it the busiest: without the preference the restart
                // would go to an idle host.
                let filler = try f.submit(["sleep", "60"], options: ["--host", first!])
                try f.waitFor("the filler running", timeout: 30) { try f.journal().job(filler)?.state == .running }
                let touched = try Testbed.run(Testbed.repoRoot + "/scripts/testbed", ["exec", first!, "touch", go], environment: Testbed.scriptEnvironment)
                #expect(touched.status == 0, "\(touched.stderr)")
                let job = try f.waitFinal([id], timeout: 60)[0]
                #expect(job.state == .succeeded, "\(job.reason ?? "")")
                #expect(job.attempt == 2 && job.failures == 0 && job.losses == 0)
                let attempts = try f.journal().attempts(of: id)
                #expect(attempts.first?.exitCode == 85)
                #expect(attempts.map(\.host) == [first!, first!], "restarted on the host it left")
                #expect(try f.drover(["logs", String(id)]).stdout == "resumed from 41 of attempt 1\n")
                let status = try f.droverState(["status", String(id)]).stdout
                #expect(status.contains("checkpoint: snapshot 1 of attempt 2 (on \(job.host ?? "?")), ") && status.contains("1 file(s), 3 bytes"), "\(status)")
                _ = try f.drover(["cancel", String(filler)])
            }
        }

        @Test func badCheckpointOptionsAreRefusedWithAClearMessage() throws {
            let r = try Testbed.run(Testbed.droverBinary, ["submit", "--checkpoint", "../x", "--inventory", (try Testbed.root()) + "/hosts.json", "--state", try Testbed.tempDirectory(), "--", "true"])
            #expect(r.status != 0 && r.stderr.contains("--checkpoint \"../x\" must be a relative path"), "\(r.stderr)")
        }
    }
}
