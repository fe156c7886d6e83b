import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// `drover retry`: re-drive dead letters (failed jobs) with a new attempt.
struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Run failed jobs again (a new attempt; their history is kept).",
        discussion: """
            A failed job is a dead letter: `drover ps --failed` lists them with why they failed and the head of their stderr. Once you have fixed the cause (a missing tool, a full disk, a bug in the input), `drover retry` puts them back in the queue. Each gets a new attempt; its earlier attempts stay in `drover status`, and the audit trail (`drover events`) records who re-drove it. A job with checkpoints starts from its newest snapshot.

            By default a re-driven job gets one more attempt: its retry budget is not renewed, so a new failure fails it again at once. --reset-budget gives it its full --retries and --lost-retries again.

            Naming a batch re-drives its failed jobs and those cancelled by its fail-fast (with --failed only the failed ones); the batch jobs that were skipped because of them wait again and run once their dependencies succeed. `drover retry --failed` alone re-drives every failed job of the journal.

            Examples:
              drover ps --failed
              drover retry 12 13
              drover retry sweep --reset-budget
              drover retry --failed
            """
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions

    @Flag(name: .long, help: "Only failed jobs (of the batches named, or of the whole journal when nothing is named), not those cancelled by fail-fast.")
    var failed = false

    @Flag(name: .long, help: "Give each job its full retry budgets (--retries, --lost-retries) again instead of one more attempt.")
    var resetBudget = false

    @Flag(name: .long, help: "Print what was done as JSON.")
    var json = false

    @Argument(help: ArgumentHelp("Job ids or names, or batch names.", valueName: "job-or-batch"))
    var targets: [String] = []

    func validate() throws {
        if targets.isEmpty && !failed { throw ValidationError("name jobs or a batch, or give --failed to re-drive every failed job (see `drover ps --failed`)") }
    }

    func run() async throws {
        let location = stateOptions.location
        guard location.exists else {
            Terminal.error("no jobs yet (state directory \(location.path))")
            throw ExitCode(2)
        }
        let journal = try stateOptions.openJournal(create: false)
        let ids = try Self.jobs(targets, failedOnly: failed, in: journal)
        guard !ids.isEmpty else {
            print("nothing to retry: no failed job\(targets.isEmpty ? "" : " in \(targets.joined(separator: ", "))")")
            return
        }
        let outcomes = try Self.redrive(ids, resetBudget: resetBudget, by: LocalUser.name, journal: journal) { try inventoryOptions.load() }
        let redriven = outcomes.filter { $0.refused == nil }
        if json {
            print(try Terminal.json(outcomes))
        } else {
            for o in outcomes {
                if let why = o.refused {
                    print("\(o.label)\tnot retried: it is \(why)")
                } else {
                    print("\(o.label)\tretried" + (o.released.isEmpty ? "" : "; waiting again: " + o.released.joined(separator: ", ")))
                }
            }
        }
        if redriven.isEmpty { throw ExitCode(2) }
    }

    /// The jobs `targets` name (ids, names, or batches: their re-drivable jobs), or every dead
    /// letter when there are none; each once.
    static func jobs(_ targets: [String], failedOnly: Bool, in journal: Journal) throws -> [Int] {
        var ids: [Int] = []
        if targets.isEmpty {
            ids = try journal.deadLetters().map(\.job.id)
        }
        for t in targets {
            if Int(t) == nil, try journal.batch(named: t) != nil {
                ids += try journal.redrivable(batch: t, cancelled: !failedOnly).map(\.id)
            } else {
                ids += try journal.resolveAll([t]).map(\.id)
            }
        }
        return ids.reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
    }

    /// Re-drives `ids` (recorded as done by `who`) and starts the coordinator when one was;
    /// what became of each (`drover retry` and the dashboard's Retry button).
    static func redrive(_ ids: [Int], resetBudget: Bool, by who: String, journal: Journal,
                        inventory: () throws -> Inventory) throws -> [RedriveOutcome] {
        let outcomes: [RedriveOutcome]
        do { outcomes = try journal.redrive(ids, resetBudget: resetBudget, by: who) } catch {
            Terminal.error("cannot record the retry: \(error)")
            throw ExitCode(1)
        }
        if outcomes.contains(where: { $0.refused == nil }) {
            try CoordinatorLauncher.ensureRunning(state: journal.state, inventory: try inventory())
        }
        return outcomes
    }
}
