import DroverCore
import Testing
@testable import DroverProtocol

@Suite("Heartbeat load and memory")
struct HostLoadTests {
    @Test func loadAndMemoryRoundTripThroughTheHeartbeat() throws {
        let load = HostLoad(load1: 0.52, load5: 0.4, load15: 0.33, memoryAvailableBytes: 23_417_237_504, memoryTotalBytes: 33_554_432_000)
        var o = JSONObject()
        o.set("seq", 3)
        load.write(into: &o)
        #expect(o.text.contains("\"load\":[0.52,0.4,0.33]"))
        #expect(HostLoad(heartbeat: try JSONParser.parse(Array(o.text.utf8))) == load)
    }

    @Test func anOlderAgentsHeartbeatOrAnUnknownPlatformGivesNil() throws {
        let old = try JSONParser.parse(Array(#"{"seq":1,"load":[1.5,1,0.5],"mem_available_bytes":1024}"#.utf8))
        #expect(HostLoad(heartbeat: old) == HostLoad(load1: 1.5, load5: 1, load15: 0.5, memoryAvailableBytes: 1024))
        var o = JSONObject()
        HostLoad().write(into: &o)
        #expect(o.text == #"{"load":null,"mem_available_bytes":null,"mem_total_bytes":null}"#)
        #expect(HostLoad(heartbeat: try JSONParser.parse(Array(o.text.utf8))) == HostLoad())
    }
}
