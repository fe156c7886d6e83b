import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// `drover wait`: block until jobs end.
struct WaitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait until jobs end; exit 0 when all succeeded, 1 otherwise.",
        discussion: """
            When jobs are unfinished but no coordinator runs (it crashed, was killed, its machine rebooted), wait starts it first, as run and submit do; with --no-start it says so on stderr and waits for one to be started.

            Examples:
              drover wait 12 13 14
              drover wait sweep-3 --timeout 2h --json
            """
    )

    @OptionGroup var stateOptions: StateOptions

    @Option(name: .long, help: ArgumentHelp("Give up after this long (exit 3): 90, 15m, 2h.", valueName: "duration"))
    var timeout: String?

    @OptionGroup var start: CoordinatorStartOptions

    @Flag(name: .long, help: "Print the jobs as JSON when they end.")
    var json = false

    @Argument(help: ArgumentHelp("Job ids or names.", valueName: "job"))
    var jobs: [String]

    func validate() throws {
        if jobs.isEmpty { throw ValidationError("name at least one job (see `drover ps`)") }
        if let timeout, Durations.parse(timeout) == nil { throw ValidationError("--timeout \(timeout): not a duration") }
    }

    func run() async throws {
        let journal = try stateOptions.openJournal(create: false)
        let ids = try journal.resolveAll(jobs).map(\.id)
        try CoordinatorPresence.ensure(journal, inventory: nil, noStart: start.noStart)
        let follower = try JobFollower(journal: journal, inventory: Inventory(source: .embeddedDefault, hosts: []))
        let result = try await follower.waitFinal(ids, timeout: timeout.flatMap(Durations.parse))
        if json {
            print(try Terminal.json(result))
        } else {
            for j in result { print("\(j.id)\t\(j.state.rawValue)\t\(j.reason ?? "")") }
        }
        if !result.allSatisfy(\.state.isFinal) { throw ExitCode(3) }
        if !result.allSatisfy({ $0.state == .succeeded }) { throw ExitCode(1) }
    }
}
