import DroverAgent
import DroverCore
#if canImport(Glibc)
import Glibc
#endif

// drover-bench agent --agent PATH [--quick]
// Prints the agent's figures: start latency, throughput, RSS, heartbeat jitter, binary size.
let args = Array(CommandLine.arguments.dropFirst())
guard args.first == "agent", let i = args.firstIndex(of: "--agent"), i + 1 < args.count else {
    print("usage: drover-bench agent --agent PATH [--quick]")
    exit(2)
}
let bench = AgentBench(agent: args[i + 1], quick: args.contains("--quick"))
exit(bench.run())
