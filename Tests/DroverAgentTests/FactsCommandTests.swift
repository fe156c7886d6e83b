import DroverCore
import DroverProtocol
import Foundation
import Testing
@testable import DroverAgent

@Suite("Agent: host facts")
struct FactsCommandTests {
    @Test func commandsRunWithTheirOutputFailureOrTimeoutAndBuiltInFactsAreThere() {
        let start = ContinuousClock.now
        // 3 s, not 1: on a loaded 2-core machine starting a shell can take a second.
        let report = FactsCommand.collect(FactsRequest(commands: [
            "greeting": "printf '\\n  hello world  \\nsecond line\\n'", "broken": "echo nope >&2; exit 7", "slow": "sleep 30; echo late",
        ], timeout: 3))
        #expect(report.values["greeting"] == "hello world  ")
        #expect(report.errors["broken"] == "exit 7: nope")
        #expect(report.errors["slow"] == "timed out after 3 s" && report.values["slow"] == nil)
        // The slow command was killed at the timeout, not waited for.
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(report.kernel?.isEmpty == false)
        #if os(Linux)
        #expect(report.os != nil)
        #endif
    }

    @Test func theReportCrossesTheWireUnchanged() throws {
        let report = HostFactsReport(os: "Debian GNU/Linux 11 (bullseye)", kernel: "6.1", cpu: "EPYC", gpus: ["0", "1"], values: ["python": "Python 3.9.2"], errors: ["gp": "exit 127: sh: gp: not found"])
        guard case .facts(let back)? = AgentMessage.parse(report.line) else { Issue.record("not read back as facts"); return }
        #expect(back == report && back.all["gpus"] == "2" && back.all["python"] == "Python 3.9.2")
        let command = AgentCommand.facts(FactsRequest(commands: ["python": "python3 -V"], timeout: 5))
        #expect(try AgentCommand.parse(JSONParser.parse(command.line), file: "t").get() == command)
        #expect(GPUDetection.parseSMI("GPU 0: NVIDIA A100 (UUID: GPU-1)\nGPU 1: NVIDIA A100 (UUID: GPU-2)\n") == ["0", "1"])
    }
}
