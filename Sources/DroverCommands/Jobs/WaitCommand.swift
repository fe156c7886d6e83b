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
            When jobs are unfinished but no coordinator runs (it crashed, was killed, its machine rebooted), wait starts it first, as run and submit do, and again if it exits while wait waits; with --no-start it says so on stderr and waits for one to be started.

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
        let follower = try JobFollower(journal: journal, inventory: Inventory(source: .embeddedDefault, hosts: []))
        let deadline = timeout.flatMap(Durations.parse).map { Date().addingTimeInterval($0) }
        var result: [JobRecord]
        while true {
            try CoordinatorPresence.ensure(journal, inventory: nil, noStart: start.noStart)
            // A coordinator that exits while we wait (killed, crashed) is noticed at once: a
            // thread blocks in flock on its lock; the wait then starts it again (or says so).
            let gone = Locked(false)
            let watcher: Task<Void, Never>? = journal.state.runningCoordinator() == nil ? nil : Task { [watch = follower.watch, state = journal.state] in
                guard await CoordinatorLauncher.waitForExit(state: state, timeout: 366 * 86_400) else { return }
                gone.withLock { $0 = true }
                watch.poke()
            }
            result = try await follower.waitFinal(ids, until: deadline, giveUp: { gone.withLock { $0 } })
            watcher?.cancel()
            if result.allSatisfy(\.state.isFinal) || !gone.withLock({ $0 }) { break }
            Terminal.note("the coordinator of \(journal.state.path) exited while jobs were unfinished")
        }
        if json {
            print(try Terminal.json(result))
        } else {
            for j in result { print("\(j.id)\t\(j.state.rawValue)\t\(j.reason ?? "")") }
        }
        if !result.allSatisfy(\.state.isFinal) { throw ExitCode(3) }
        if !result.allSatisfy({ $0.state == .succeeded }) { throw ExitCode(1) }
    }
}
