#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DroverSSH
import DroverTestSupport
import Testing
@testable import DroverCoordinator

// Alone the suite takes about a second; in the full run, tests that block the cooperative
// pool's threads (two on this machine) have held it back for a minute.
@Suite(.timeLimit(.minutes(3)), .ownThread)
struct LocalSessionTests {
    /// Starts `command`, runs `body`, and cancels the stream afterwards even when `body` fails.
    private func withStream<T>(_ command: String, stdin: [UInt8]? = nil, _ body: (LocalStream) async throws -> T) async throws -> T {
        let s = try LocalStream(command, stdin: stdin, host: "test")
        defer { s.cancel() }
        return try await body(s)
    }

    /// Every event of a stream until its end.
    private func collect(_ stream: HostStream) async throws -> [ExecEvent] {
        var events: [ExecEvent] = []
        for try await e in stream { events.append(e) }
        return events
    }

    /// Whether `pid` is gone (not even a zombie).
    private func gone(_ pid: pid_t) -> Bool { kill(pid, 0) == -1 && errno == ESRCH }

    /// Whether `condition` becomes true within five seconds (checked every 10 ms).
    private func eventually(_ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(5)
        while !condition() {
            if ContinuousClock.now > deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    @Test func separatesStdoutAndStderrInOrderWithExitCode() async throws {
        let events = try await withStream("printf a; printf b >&2; exit 3") { try await collect($0.stream) }
        #expect(events == [.stdout(Array("a".utf8)), .stderr(Array("b".utf8)), .exit(.exited(3))])
    }

    @Test func reportsTheKillingSignal() async throws {
        let events = try await withStream("kill -KILL $$") { try await collect($0.stream) }
        #expect(events == [.exit(.signaled("KILL"))])
        let term = try await withStream("kill -TERM $$") { try await collect($0.stream) }
        #expect(term.last == .exit(.signaled("TERM")))
    }

    @Test func emptyOrNilStdinReadsAsEndOfFile() async throws {
        for input: [UInt8]? in [nil, []] {
            let events = try await withStream("wc -c", stdin: input) { try await collect($0.stream) }
            #expect(events.last == .exit(.exited(0)))
            #expect(String(decoding: events.compactMap { if case .stdout(let b) = $0 { b } else { nil } }.joined(), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        }
    }

    @Test func stdinBytesReachTheCommand() async throws {
        let input = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        let events = try await withStream("cat", stdin: input) { try await collect($0.stream) }
        var out: [UInt8] = []
        for case .stdout(let b) in events { out += b }
        #expect(out.count == input.count)
        #expect(out == input)
        #expect(events.last == .exit(.exited(0)))
    }

    @Test func largeOutputStreamsCompletely() async throws {
        let (count, last) = try await withStream("head -c 50000000 /dev/zero") { s in
            var count = 0
            var last: ExecEvent?
            for try await e in s.stream {
                if case .stdout(let b) = e { count += b.count }
                last = e
            }
            return (count, last)
        }
        #expect(count == 50_000_000)
        #expect(last == .exit(.exited(0)))
    }

    @Test func aSlowConsumerHoldsTheCommandBack() async throws {
        try await withStream("head -c 50000000 /dev/zero; echo done >&2") { s in
            var iterator = s.stream.makeAsyncIterator()
            _ = try await iterator.next()
            // Unread output is bounded, so the command stays blocked writing, far from done
            // (without back-pressure, 50 MB would be read into memory in well under this).
            try await Task.sleep(for: .milliseconds(300))
            #expect(kill(s.pid, 0) == 0)
            var count = 0
            while let e = try await iterator.next() {
                if case .stdout(let b) = e { count += b.count }
            }
            #expect(count > 0)
        }
    }

    @Test func cancelKillsAndReapsTheCommandPromptly() async throws {
        let s = try LocalStream("sleep 100", stdin: nil, host: "test")
        defer { s.cancel() }
        let pid = s.pid
        #expect(kill(pid, 0) == 0)
        let start = ContinuousClock.now
        s.cancel()
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(gone(pid))
        // sh's own children die with it (the whole group got SIGTERM); init reaps them soon.
        #expect(await eventually { kill(-pid, 0) == -1 }, "no process left in the command's group")
        #expect(try await s.next() == nil)
    }

    @Test func cancelWakesAWaitingConsumer() async throws {
        let s = try LocalStream("sleep 100", stdin: nil, host: "test")
        defer { s.cancel() }
        let stream = s.stream
        let consumer = ownThreadTask { try await collect(stream) }
        await Task.yield()
        stream.cancel()
        // A consumer already waiting gets CancellationError; one that comes later sees the end.
        switch await consumer.result {
        case .success(let events): #expect(events.isEmpty)
        case .failure(let error): #expect(error is CancellationError)
        }
        #expect(gone(s.pid))
    }

    @Test func droppingTheStreamKillsTheCommand() async throws {
        var pid: pid_t = 0
        do {
            let s = try LocalStream("sleep 100", stdin: nil, host: "test")
            pid = s.pid
        }
        // The reader kills and reaps it on its own thread.
        let reaped = await eventually { gone(pid) }
        if !reaped { kill(-pid, SIGKILL) }
        #expect(reaped)
    }

    @Test func linesArriveBeforeTheCommandEnds() async throws {
        let events: [ExecEvent?] = try await withStream("echo one; sleep 1; echo two") { s throws -> [ExecEvent?] in
            var iterator = s.stream.makeAsyncIterator()
            return [try await iterator.next(), try await iterator.next(), try await iterator.next()]
        }
        // Output held back until the end would arrive as one chunk "one\ntwo\n"; a line
        // streamed as it is written arrives alone, a second before the next.
        #expect(events == [.stdout(Array("one\n".utf8)), .stdout(Array("two\n".utf8)), .exit(.exited(0))])
    }

    @Test func localSessionStreamsThroughHostSession() async throws {
        let session: any HostSession = LocalSession(name: "here")
        let stream = try session.stream("read x; echo \"got $x\"", stdin: Array("hi\n".utf8))
        defer { stream.cancel() }
        let events = try await collect(stream)
        #expect(events == [.stdout(Array("got hi\n".utf8)), .exit(.exited(0))])
    }
}
