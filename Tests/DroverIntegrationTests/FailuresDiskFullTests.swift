import DroverCoordinator
import DroverCore
import Foundation
import Testing

/// docs/failures.md, "A full disk, or another journal write failure": the coordinator's state
/// directory on a small tmpfs that the test fills up (mounting it needs root).
extension TestbedSuite {
    @Suite("Failures: the journal's disk is full", .enabled(if: getuid() == 0, "needs root to mount a small tmpfs for the coordinator's state"))
    struct FailuresDiskFullTests {
        @Test(.timeLimit(.minutes(2))) func aSubmitOnAFullDiskFailsWithOneMessageChangesNothingAndWorksOnceThereIsSpace() async throws {
            let f = try CoordinatorFixture()
            let folder = URL(fileURLWithPath: f.state).deletingLastPathComponent().path
            let mounted = try Testbed.run("/bin/mount", ["-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", folder])
            try #require(mounted.status == 0, "cannot mount a tmpfs on \(folder): \(mounted.stderr)")
            func cleanUp() async {
                await f.tearDown()
                _ = try? Testbed.run("/bin/umount", ["-l", folder])
                try? FileManager.default.removeItem(atPath: folder)
            }
            do {
                try f.startAndWaitForHosts()
                let before = try f.submit(["echo", "before"])
                #expect(try f.waitFinal([before], timeout: 30).first?.state == .succeeded)
                let filler = folder + "/filler"
                _ = try Testbed.run("/bin/dd", ["if=/dev/zero", "of=" + filler, "bs=64k"])
                // Jobs whose requests need new pages (1.5 MB each), until one finds no room: the
                // journal's write-ahead log may still have room of its own for the first ones.
                let args = ["true"] + Array(repeating: String(repeating: "x", count: 100_000), count: 15)
                var recorded = [before]
                var refused: (status: Int32, stdout: String, stderr: String)?
                for _ in 0..<20 {
                    let r = try f.drover(["submit", "--"] + args)
                    if r.status == 0, let id = Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) {
                        recorded.append(id)
                        continue
                    }
                    refused = r
                    break
                }
                let full = try #require(refused, "20 submits of 1.5 MB each fit on a full disk")
                #expect(full.status == 1, "\(full.stdout.prefix(200))")
                #expect(full.stderr.contains("cannot record the job: ") && full.stderr.contains("the disk is full; free space and run the command again (nothing was changed)"),
                        "\(full.stderr.prefix(600))")
                #expect(Set(try f.journal().jobs().map(\.id)) == Set(recorded), "nothing of the refused job was recorded")
                try FileManager.default.removeItem(atPath: filler)
                #expect(f.pid > 0 && kill(f.pid, 0) == 0, "the coordinator survived the full disk")
                let after = try f.submit(args)
                #expect(try f.waitFinal([after], timeout: 30).first?.state == .succeeded)
            } catch {
                await cleanUp()
                throw error
            }
            await cleanUp()
        }
    }
}
