import DroverCoordinator
import DroverCore
import DroverSSH
import Foundation
import Testing

extension TestbedSuite {
    /// Tests that load the machine (every CPU of a host busy) or measure this test process's
    /// memory. `scripts/test` runs every suite named `…SerialTests` in a second pass, one test
    /// at a time (`--no-parallel`): the memory of the whole test process is then this test's
    /// alone, and no timing assertion of another test runs while the CPUs are saturated.
    @Suite("Testbed under load (serial pass)", .serialized)
    struct TestbedLoadSerialTests {
        @Test func hundredMegabytesStreamWithFlatMemory() async throws {
            let c = try await Testbed.connect("h1")
            defer { c.close() }
            // Warm up, then measure: the buffer per channel is bounded (1 MiB by default).
            _ = try await c.run("head -c 1000000 /dev/zero")
            let before = Testbed.residentBytes()
            var stdoutBytes = 0
            var peak = before
            var chunks = 0
            for try await event in c.exec("head -c 100000000 /dev/urandom; echo done >&2") {
                if case .stdout(let b) = event { stdoutBytes += b.count }
                chunks += 1
                if chunks % 64 == 0 { peak = max(peak, Testbed.residentBytes()) }
            }
            #expect(stdoutBytes == 100_000_000)
            let growth = peak - before
            #expect(growth < 40 << 20, "resident memory grew by \(growth >> 20) MiB while streaming 100 MB")
        }

        @Test func aConsumerThatDoesNotReadHoldsTheRemoteSideBack() async throws {
            let c = try await Testbed.connect("h1")
            defer { c.close() }
            let before = Testbed.residentBytes()
            let stream = c.exec("head -c 50000000 /dev/zero")
            var iterator = stream.makeAsyncIterator()
            // Read one chunk, then stop reading for a while: the connection must not read ahead.
            _ = try await iterator.next()
            try await Task.sleep(for: .seconds(1))
            // Not a synchronisation: the second is the window in which a read-ahead would show.
            let idle = Testbed.residentBytes() - before
            #expect(idle < 12 << 20, "\(idle >> 20) MiB buffered while the consumer was not reading")
            var total = 0
            while let event = try await iterator.next() {
                if case .stdout(let b) = event { total += b.count }
            }
            #expect(total > 49_000_000)
        }

        @Test(.timeLimit(.minutes(2))) func aHostSaturatedByCPUBoundJobsStaysUp() async throws {
            try await CoordinatorFixture.with(deadAfter: 10) { f in
                let burn = ["sh", "-c", "end=$(($(date +%s) + 30)); while [ $(date +%s) -lt $end ]; do :; done"]
                let ids = try (0..<2).map { _ in try f.submit(burn, options: ["--host", "h1"]) }
                let jobs = try f.waitFinal(ids, timeout: 90)
                #expect(jobs.allSatisfy { $0.state == .succeeded })
                let j = try f.journal()
                let h1 = try j.events().filter { $0.kind == "host" && $0.host == "h1" && $0.state != nil }
                #expect(!h1.contains { $0.state == "suspect" || $0.state == "down" }, "\(h1.map(\.message))")
            }
        }
    }
}
