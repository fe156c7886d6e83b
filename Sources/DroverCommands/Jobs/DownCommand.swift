import ArgumentParser
import DroverCoordinator
import DroverInventory
import DroverCore
import Foundation

/// `drover down`: stop the coordinator and the agents.
struct DownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop the coordinator and the agents on every host.",
        discussion: """
            Without --kill-jobs, running jobs keep running under their supervisors and are picked up again by the next `drover run`/`submit` (which starts the agents and the coordinator again). With --kill-jobs every unfinished job of this state directory is cancelled first (queued ones never start) and its processes are killed.

            Only this coordinator's work is touched: other coordinators (other state directories) that use the same hosts keep their jobs, and an agent that still serves one of them (its lease is live) is left running: `h1: agent kept running: it serves 1 other coordinator (…)`. This coordinator's lease is withdrawn, so jobs left running have no dead man's switch until it comes back.

            Examples:
              drover down
              drover down --kill-jobs
            """
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions

    @Flag(name: .long, help: "Cancel every unfinished job and kill its processes.")
    var killJobs = false

    func run() async throws {
        let inventory = try inventoryOptions.load()
        let state = stateOptions.location
        // Our id on the agents (job names, spec `coordinator`, `leases/<id>`); none without a journal.
        let cid = state.exists ? try stateOptions.openJournal(create: false).coordinatorID() : nil
        if killJobs && state.exists {
            let journal = try stateOptions.openJournal(create: false)
            let active = try journal.jobs(in: [.queued, .dispatched, .running]).map(\.id)
            if !active.isEmpty {
                _ = try journal.requestCancel(active)
                if state.runningCoordinator() != nil {
                    let follower = try JobFollower(journal: journal, inventory: inventory)
                    let done = try await follower.waitFinal(active, timeout: 60)
                    print("cancelled \(done.filter { $0.state == .cancelled }.count) job(s)")
                }
            }
        }
        if let pid = state.runningCoordinator(), pid > 0 {
            kill(pid, SIGTERM)
            let stopped = await CoordinatorLauncher.waitForExit(state: state, timeout: 15)
            if !stopped && state.runningCoordinator() != nil {
                kill(pid, SIGKILL)
                print("coordinator (pid \(pid)) did not stop in 15 s: killed")
            } else {
                print("coordinator (pid \(pid)) stopped")
            }
        }
        // Each agent cancels only our attempts (when killing), withdraws our lease, and stops
        // unless another coordinator's lease is live. Without a journal we have no attempts.
        var arguments = "stop --keep-if-served"
        if let cid {
            arguments += " --coordinator \(cid)" + (killJobs ? " --kill-jobs" : "")
        }
        let stopArguments = arguments
        let results = await withTaskGroup(of: AgentRemote.Outcome.self) { group in
            for h in inventory.hosts { group.addTask { await AgentRemote.run(on: h, stopArguments, timeout: 90) } }
            var out: [AgentRemote.Outcome] = []
            for await r in group { out.append(r) }
            return out.sorted { $0.host < $1.host }
        }
        for r in results { print("\(r.host): \(r.output.isEmpty ? (r.ok ? "stopped" : "failed") : r.output)") }
        if results.contains(where: { !$0.ok }) { throw ExitCode(1) }
    }
}
