import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `drover-agent stop [--kill-jobs]`: ask the agent to exit, and wait until it has.
enum StopCommand {
    static func run(_ options: inout Options) throws(AgentError) -> Int32 {
        try options.allow(["--kill-jobs"])
        let dir = options.root
        guard let pid = AgentLock.holder(dir) else {
            print("no agent running in \(dir.root)")
            return 0
        }
        let kill = options.flags.contains("--kill-jobs")
        do { try AtomicFile.write(Array((kill ? "kill-jobs\n" : "stop\n").utf8), to: dir.stopRequest) } catch { throw .system(error) }
        let end = monotonicTime() + (kill ? 60 : 10)
        while AgentLock.holder(dir) != nil {
            if monotonicTime() > end { throw .invalid("the agent (pid \(pid)) did not stop in time; see \(dir.agentLog)") }
            sleepSeconds(0.02)
        }
        print("drover-agent stopped (pid \(pid))\(kill ? "; its jobs were cancelled" : "; its jobs keep running")")
        return 0
    }
}
