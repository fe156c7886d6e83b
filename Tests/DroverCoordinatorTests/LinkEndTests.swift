import DroverProtocol
import Testing
@testable import DroverCoordinator

/// Which ends of a host's link are an agent that cannot serve this drover (said once, retried
/// every 30 s) rather than a break a reconnect cures.
@Suite("Link ends")
struct LinkEndTests {
    @Test func anAgentWithoutTheLinkCommandIsIncompatible() throws {
        let end = LinkEnd(reason: "the agent's event stream ended (2)", stderr: "drover-agent: error: unknown command \"link\"\nusage: …")
        let why = try #require(LinkEnd.incompatibility(end, host: "h1", build: "a9a118a07363"))
        #expect(why.contains("h1") && why.contains("a9a118a07363") && why.contains("no `link` command"))
        #expect(why.contains("scripts/install"), "it says what to do")
    }

    @Test func anotherProtocolIsIncompatible() throws {
        let end = LinkEnd(reason: "…", agentProtocol: WireProtocol.version + 1)
        let why = try #require(LinkEnd.incompatibility(end, host: "h2", build: nil))
        #expect(why.contains("protocol \(WireProtocol.version + 1)") && why.contains("this drover speaks \(WireProtocol.version)"))
    }

    @Test func breaksAReconnectMayCureAreNot() {
        // A link that worked, a host that went away, an agent killed mid-stream.
        #expect(LinkEnd.incompatibility(LinkEnd(reason: "closed", greeted: true, stderr: "unknown command \"link\""), host: "h1", build: nil) == nil)
        #expect(LinkEnd.incompatibility(LinkEnd(reason: "the agent's event stream ended (137)"), host: "h1", build: nil) == nil)
        #expect(LinkEnd.incompatibility(LinkEnd(reason: "x", stderr: "link: cannot read the event log: No space left on device"), host: "h1", build: nil) == nil)
    }
}
