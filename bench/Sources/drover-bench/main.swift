import DroverAgent
import DroverCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// drover-bench agent --agent PATH [--quick]
// drover-bench run --drover PATH --agent PATH --testbed DIR --python PATH --results DIR [--quick]
//                  [--only SCENARIO,...] [--share DIR]
let args = Array(CommandLine.arguments.dropFirst())
func value(_ name: String) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}
switch args.first {
case "agent":
    guard let agent = value("--agent") else { break }
    exit(AgentBench(agent: agent, quick: args.contains("--quick")).run())
case "run":
    guard let drover = value("--drover"), let agent = value("--agent"), let testbed = value("--testbed"),
          let python = value("--python"), let results = value("--results") else { break }
    let only = value("--only").map { Set($0.split(separator: ",").map(String.init)) }
    if let unknown = only?.subtracting(SideBySide.scenarios), !unknown.isEmpty {
        print("drover-bench: unknown scenario \(unknown.sorted().joined(separator: ", ")) (scenarios: \(SideBySide.scenarios.joined(separator: ", ")))")
        exit(2)
    }
    do {
        let bed = try Testbed(dir: testbed)
        let dask = DaskPeer(bed: bed, python: python, script: FileManager.default.currentDirectoryPath + "/bench/peers/dask_peer.py")
        let bench = SideBySide(drover: drover, agent: agent, bed: bed, dask: dask, quick: args.contains("--quick"), results: results,
                               only: only, share: value("--share"))
        exit(bench.run())
    } catch {
        print("bench: \(error)")
        exit(1)
    }
default:
    break
}
print("usage: drover-bench agent --agent PATH [--quick]\n       drover-bench run --drover PATH --agent PATH --testbed DIR --python PATH --results DIR [--quick] [--only SCENARIO,...] [--share DIR]\nscenarios: \(SideBySide.scenarios.joined(separator: ", "))")
exit(2)
