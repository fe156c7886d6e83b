import ArgumentParser
import DroverCoordinator
import DroverCore
import Foundation

/// `drover compensate`: run a batch's compensations by hand, or resume a saga that stopped.
struct CompensateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compensate",
        abstract: "Undo a finished batch: run the compensations of its jobs that succeeded, in reverse dependency order.",
        discussion: """
            A batch job may declare "compensate": a command that undoes what the job did (same fields as a job: argv or shell, env, host, on, timeout, retry). With the batch policy "compensate-on-failure" this happens by itself when the batch fails; `drover compensate BATCH` does it by hand for a batch whose jobs are all over. A job's compensation runs only after those of every job that depended on it, on any host that fits; each gets DROVER_COMPENSATING=1, DROVER_ORIGINAL_JOB, DROVER_ORIGINAL_ATTEMPT, DROVER_ORIGINAL_HOST and DROVER_ORIGINAL_RESULTS (the original's results folder on this machine).

            A compensation that fails for good (after its own retries) stops the saga there: `drover status BATCH` and the report say what is left. Fix the cause, then `drover compensate BATCH --resume` runs it again and goes on.

            Waits until the saga is over (exit 0: compensated; 1: stopped at a failure) unless --no-wait.

            Examples:
              drover compensate deploy-42
              drover compensate deploy-42 --resume
            """
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions

    @Argument(help: ArgumentHelp("The batch.", valueName: "batch"))
    var batch: String

    @Flag(name: .long, help: "Continue a saga that stopped at a failed compensation (that compensation runs again).")
    var resume = false

    @Flag(name: .customLong("no-wait"), help: "Return once the request is recorded.")
    var noWait = false

    @Option(name: .long, help: ArgumentHelp("Stop waiting after this long (the saga goes on); exit 3.", valueName: "duration"))
    var timeout: String?

    func run() async throws {
        let limit = try timeout.map { t in
            guard let d = Durations.parse(t), d > 0 else { throw ValidationError("--timeout: \(t) is not a duration (90, 15m, 2h)") }
            return d
        }
        let journal = try stateOptions.openJournal(create: false)
        do {
            _ = try journal.requestCompensation(batch, resume: resume, by: LocalUser.name)
        } catch let e as SagaError {
            Terminal.error(e.message)
            throw ExitCode(1)
        }
        try CoordinatorLauncher.ensureRunning(state: journal.state, inventory: try inventoryOptions.load())
        Terminal.note("batch \(batch): compensation \(resume ? "resumed" : "requested")")
        if noWait { return }
        let watch = try JournalWatch(journal)
        defer { watch.stop() }
        let record = try await watch.reread(until: limit.map { Date().addingTimeInterval($0) }, { try journal.batch(named: batch) }) { $0?.saga != "compensating" }
        guard let record else { throw ExitCode(1) }
        let report = try BatchReport.build(journal, batch: record)
        print(report.sagaSummary.dropFirst().joined(separator: "\n"))
        switch record.saga {
        case "compensated"?: return
        case "compensating"?: throw ExitCode(3)
        default: throw ExitCode(1)
        }
    }
}
