import DroverCore
import Foundation
import Testing

/// `drover run` on a `transport: local` host: no SSH and no testbed, only this machine.
@Suite("Local host", .timeLimit(.minutes(2)))
struct LocalHostTests {
    @Test func runStreamsOutputAndExitsWithTheJobsCode() async throws {
        let dir = try Testbed.tempDirectory()
        let state = dir + "/state", inventory = dir + "/hosts.json"
        defer {
            // Stops the coordinator and the agent this test started, even when it failed.
            _ = try? ChildProcess.run([Testbed.droverBinary, "down", "--state", state, "--inventory", inventory, "--kill-jobs"], timeout: 60)
            try? FileManager.default.removeItem(atPath: dir)
        }
        try AtomicFile.write(Array(#"{"hosts":[{"name":"here","transport":"local","root":"\#(dir)/root"}]}"#.utf8), to: inventory)
        let r = try ChildProcess.run(
            [Testbed.droverBinary, "run", "--state", state, "--inventory", inventory, "--", "sh", "-c", "echo hi; echo oops >&2; exit 4"],
            timeout: 60)
        #expect(r.status == 4, "\(r.stderrText)")
        #expect(r.stdoutText == "hi\n")
        #expect(r.stderrText.contains("oops"))
    }
}
