import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// `drover cancel`: stop jobs and wait until their processes are gone.
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel jobs; returns once their remote process trees are confirmed gone.",
        discussion: """
            A queued job is cancelled at once. A running one gets SIGTERM on its host, then SIGKILL after its grace period, and every descendant (double-forked daemons included) is killed; the command returns when the agent has reported the attempt over. A job whose host is down is cancelled in the journal at once, and its processes are killed when the host comes back (or by the agent itself when its lease runs out).

            Examples:
              drover cancel 12
              drover cancel sweep-3 sweep-4 --no-wait
            """
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions

    @Flag(name: .long, help: "Return once the request is recorded, without waiting.")
    var noWait = false

    @Option(name: .long, help: ArgumentHelp("Stop waiting after this long (exit 3): 30, 2m.", valueName: "duration"))
    var timeout: String = "120"

    @Flag(name: .long, help: "Print the jobs as JSON.")
    var json = false

    @Argument(help: ArgumentHelp("Job ids or names.", valueName: "job"))
    var jobs: [String]

    func validate() throws {
        if jobs.isEmpty { throw ValidationError("name at least one job (see `drover ps`)") }
        if Durations.parse(timeout) == nil { throw ValidationError("--timeout \(timeout): not a duration") }
    }

    func run() async throws {
        let journal = try stateOptions.openJournal(create: false)
        let ids = try journal.resolveAll(jobs).map(\.id)
        let requested = try journal.requestCancel(ids)
        if !requested.isEmpty {
            try CoordinatorLauncher.ensureRunning(state: journal.state, inventory: try inventoryOptions.load())
        }
        if noWait {
            print(json ? try Terminal.json(try journal.jobs(ids)) : "cancel requested for \(requested.map(String.init).joined(separator: ", "))")
            return
        }
        let follower = try JobFollower(journal: journal, inventory: Inventory(source: .embeddedDefault, hosts: []))
        let result = try await follower.waitFinal(ids, timeout: Durations.parse(timeout))
        if json {
            print(try Terminal.json(result))
        } else {
            for j in result { print("\(j.id)\t\(j.state.rawValue)\t\(j.reason ?? "")") }
        }
        if !result.allSatisfy(\.state.isFinal) {
            Terminal.error("not confirmed within \(timeout): the coordinator keeps trying (see `drover events --follow`)")
            throw ExitCode(3)
        }
    }
}
