import DroverCore
import DroverSSH
import Foundation
import Testing

extension TestbedSuite {
    @Suite("SSH exec")
    struct SSHExecTests {
        @Test func exitCodesAndSignals() async throws {
            let c = try await Testbed.connect("h1")
            defer { c.close() }
            #expect(try await c.run("true").status == .exited(0))
            #expect(try await c.run("exit 7").status == .exited(7))
            #expect(try await c.run("kill -TERM $$").status == .signaled("TERM"))
            #expect(try await c.run("exec sh -c 'kill -KILL $$'").status == .signaled("KILL"))
        }

        /// Bug 7 (docs/reliability.md): closing a connection whose server no longer answers (its
        /// host powered off or cut off) kept the whole libssh2 session, waiting for the close of
        /// a channel that never came: ~46 KiB per power-off in a long-lived coordinator.
        @Test func aConnectionWhoseServerStoppedAnsweringIsFreedWhenItEnds() async throws {
            let c = try await Testbed.connect("h1")
            // The shell's parent is this connection's sshd process, the one that talks to us.
            let stream = c.exec("echo $PPID; exec sleep 60")
            var first: [UInt8] = []
            if case .stdout(let bytes)? = try await stream.next() { first = bytes }
            let pid = String(decoding: first, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            try #require(Int(pid) != nil, "no pid from the channel: \(first)")
            try Testbed.script("exec", "h1", "kill", "-STOP", pid)
            defer { _ = try? Testbed.script("exec", "h1", "kill", "-KILL", pid) }
            await c.shutdown()
            #expect(c.sessionFreed, "libssh2 kept the session of a connection to a server that stopped answering")
        }

        @Test func stdoutAndStderrAreSeparate() async throws {
            let c = try await Testbed.connect("h1")
            defer { c.close() }
            let r = try await c.run("for i in 1 2 3; do echo out$i; echo err$i >&2; done")
            #expect(r.stdoutText == "out1\nout2\nout3\n")
            #expect(r.stderrText == "err1\nerr2\nerr3\n")
        }

        @Test func stdinIsDelivered() async throws {
            let c = try await Testbed.connect("h1")
            defer { c.close() }
            let input = Array((0..<300_000).map { UInt8(truncatingIfNeeded: $0) })
            let r = try await c.run("sha256sum", stdin: input)
            #expect(r.stdoutText.hasPrefix(hexString(SHA256.hash(input))))
        }

        @Test func argvReachesTheRemoteSideByteForByte() async throws {
            let c = try await Testbed.connect("h2")
            defer { c.close() }
            let argv = ["printf", "%s\\0", "a b", "it's", "$(touch /tmp/pwned)", "`id`", "x;y|z&", "new\nline", "ünï ✓", "*", "~", ""]
            let r = try await c.run(argv: argv)
            let parts = r.stdout.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
            #expect(parts == Array(argv.dropFirst(2)))
            #expect(try await c.run("test -e /tmp/pwned").status == .exited(1))
        }

        @Test func fiftyConcurrentChannelsOnOneConnection() async throws {
            let c = try await Testbed.connect("h3")
            defer { c.close() }
            let outputs = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for i in 0..<50 {
                    group.addTask { (i, try await c.run("sleep 0.3; echo channel-\(i)").stdoutText) }
                }
                var out: [Int: String] = [:]
                for try await (i, text) in group { out[i] = text }
                return out
            }
            #expect(outputs.count == 50)
            for i in 0..<50 { #expect(outputs[i] == "channel-\(i)\n") }
        }

        @Test func commandTimeoutClosesTheChannel() async throws {
            let c = try await Testbed.connect("h1")
            defer { c.close() }
            let start = ContinuousClock.now
            await #expect {
                _ = try await c.run("sleep 30", timeout: 1)
            } throws: { error in
                (error as? SSHError)?.kind == .timedOut
            }
            #expect(Testbed.elapsed(since: start) < 5)
            // The connection stays usable after a command timed out.
            #expect(try await c.run("echo ok").stdoutText == "ok\n")
        }

        @Test func pingMeasuresARoundTrip() async throws {
            let c = try await Testbed.connect("h1")
            defer { c.close() }
            var samples: [Double] = []
            for _ in 0..<5 { samples.append(try await c.ping()) }
            print("ping samples (s):", samples)
            #expect(samples.allSatisfy { $0 > 0 && $0 < 1 })
        }
    }
}
