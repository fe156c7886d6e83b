import DroverAgent
import DroverCore
#if canImport(Glibc)
import Glibc
#endif

// drover-bench agent --agent PATH [--quick]
// drover-bench coordinator --drover PATH --testbed DIR [--quick]
let args = Array(CommandLine.arguments.dropFirst())
func value(_ name: String) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}
switch args.first {
case "agent":
    guard let agent = value("--agent") else { break }
    exit(AgentBench(agent: agent, quick: args.contains("--quick")).run())
case "coordinator":
    guard let drover = value("--drover"), let testbed = value("--testbed") else { break }
    exit(CoordinatorBench(drover: drover, testbed: testbed, quick: args.contains("--quick")).run())
default:
    break
}
print("usage: drover-bench agent --agent PATH [--quick]\n       drover-bench coordinator --drover PATH --testbed DIR [--quick]")
exit(2)
