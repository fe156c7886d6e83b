import DroverCore
import DroverProtocol
import Foundation
import Testing
@testable import DroverAgent

/// `drover-agent link`, the coordinator's one two-way channel, against a real agent: commands
/// down its stdin, events, heartbeats and small results up its stdout.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct LinkCommandTests {
    /// Reads lines until one satisfies `match`, failing after `timeout` seconds.
    func readUntil(_ link: StreamingChild, timeout: Double = 10, _ match: (JSONNode) -> Bool) throws -> JSONNode {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            let node = try JSONParser.parse(try link.readLine(timeout: max(0.1, end.timeIntervalSinceNow)))
            if match(node) { return node }
        }
        throw HarnessError("no matching line within \(timeout) s")
    }

    @Test func commandsGoDownAndEventsWithSmallResultsComeUp() throws {
        let h = try AgentHarness(heartbeat: 0.2)
        try h.start()
        let link = try StreamingChild([h.binary, "link", "--from", "1", "--protocol", String(WireProtocol.version), "--root", h.root],
                                      environment: h.environment, withStdin: true)
        guard case .hello(let version, _, let build)? = AgentMessage.parse(try link.readLine(timeout: 10)) else {
            Issue.record("the first line is not a hello"); return
        }
        #expect(version == WireProtocol.version && build.count == 12, "build \(build)")
        _ = try readUntil(link) { $0["caught_up"] != nil }

        // A start and a lease renewal in one write: both take effect, no `send` process needed.
        var spec = AttemptSpec(id: AttemptID(job: "linked", attempt: 1), argv: ["sh", "-c", "printf 'out\\001'; printf err >&2"])
        spec.coordinator = "c1"
        let lease = Lease(coordinator: "c1", epoch: 1, time: 0, ttl: 60)
        try link.write(AgentCommand.lease(lease).line + "\n" + AgentCommand.start(spec).line + "\n")
        let end = try readUntil(link) { $0["job"]?.stringValue == "linked" && $0["state"]?.stringValue == "exited" }
        let output = try #require(InlineOutput(event: end), "the end event carries the output: \(end.jsonText)")
        #expect(output.stdout == Array("out\u{1}".utf8) && output.stderr == Array("err".utf8))
        let leaseFile = try LocalFile.read(h.root + "/leases/c1")
        #expect(String(decoding: leaseFile, as: UTF8.self).contains("\"ttl\":60"))
        // Heartbeats keep coming while nothing happens.
        _ = try readUntil(link) { $0["heartbeat"] != nil }

        // Output above the inline limit stays on the host (the coordinator fetches it).
        let big = AttemptSpec(id: AttemptID(job: "big", attempt: 1), argv: ["sh", "-c", "head -c \(WireProtocol.inlineOutputLimit + 1) /dev/zero"])
        try link.write(AgentCommand.start(big).line + "\n")
        let bigEnd = try readUntil(link) { $0["job"]?.stringValue == "big" && $0["state"]?.stringValue == "exited" }
        #expect(InlineOutput(event: bigEnd) == nil)

        // A malformed line is refused on stderr and the link goes on.
        try link.write("{not json\n" + AgentCommand.cancel(job: "nothing", attempt: nil, reason: .cancelled).line + "\n")
        _ = try readUntil(link) { $0["type"]?.stringValue == "rejected" }

        // Closing stdin ends the link.
        link.closeStdin()
        let rest = try link.readToEnd(timeout: 10)
        #expect(rest.status == 0)
        #expect(String(decoding: rest.stderr, as: UTF8.self).contains("malformed JSON"))
    }

    @Test func anotherProtocolVersionIsRefusedWithOneLine() throws {
        let h = try AgentHarness(heartbeat: 0.2)
        let r = try h.agent(["link", "--protocol", "99"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("speaks protocol \(WireProtocol.version), the coordinator 99"), "\(r.stderr)")
        #expect(r.stdout.isEmpty, "nothing is sent to a coordinator of another protocol")
    }
}
