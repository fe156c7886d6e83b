import ArgumentParser
import DroverCoordinator
import DroverInventory
import DroverCore
import Foundation

/// `drover run`: run one job and follow it to the end.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a job (or a batch file) and follow it: live output and the job's exit code, or the batch's progress and report.",
        discussion: """
            The job is queued like `drover submit` does, then its stdout and stderr are copied here as the job writes them. If its host dies, the job runs again on another host (see --lost-retries) and the output continues from the new attempt. The exit status is the job's: its exit code, 128+N when killed by signal N, 124 after --timeout, 130 when cancelled.

            Ctrl-C asks whether to cancel the job or leave it running (--on-interrupt answers it for scripts; without a terminal the default is to cancel).

            Examples:
              drover run -- sage compute.sage 17
              drover run --host studio --mem 8G -- python3 simulate.py --steps 1e9
              drover run --detach --name sweep-3 -- ./sweep 3

            With a batch file (docs/batches.md) instead of a command, the batch is submitted and followed: a live progress display on a terminal (one line per change otherwise, --progress json for programs), then a summary; the report is written to results/<batch>/report.json. Exit status 0 when every job succeeded, 1 otherwise.
              drover run primes.json
              drover run primes.json --fail-fast --joblog primes.joblog
            """
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions

    @Flag(name: .long, help: "Print the job id and return at once (like submit).")
    var detach = false

    @Option(name: .long, help: ArgumentHelp("What Ctrl-C does: ask, cancel (the job, and wait until its processes are gone) or leave (it running).", valueName: "choice"))
    var onInterrupt: InterruptChoice?

    @OptionGroup(title: "Batch options") var batch: BatchOptions
    @OptionGroup var job: JobOptions

    @Argument(help: ArgumentHelp("A batch file (*.json) to run instead of a command.", valueName: "batch.json"))
    var batchFile: String?

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after --, passed byte for byte without a shell.", valueName: "command"))
    var command: [String] = []

    func run() async throws {
        if let submission = try BatchSubmission.named(batchFile, command: command, job: job, options: batch, inventory: inventoryOptions) {
            return try await submission.run(state: stateOptions, detach: detach, onInterrupt: onInterrupt)
        }
        if batch.dryRun { return try SubmitCommand.dryRun(job, command: command, state: stateOptions, inventory: inventoryOptions) }
        let submission = try Submission(job, command: command, state: stateOptions, inventory: inventoryOptions)
        let (id, journal, inventory) = (submission.id, submission.journal, submission.inventory)
        if detach {
            print(id)
            return
        }
        let choice = InterruptChoice.resolve(onInterrupt)
        let interrupt = InterruptWatch()
        defer { interrupt.stop() }

        let follower = try JobFollower(journal: journal, inventory: inventory)
        interrupt.wakes(follower.watch)
        let outcome: JobRecord
        do {
            outcome = try await follower.follow(id) { interrupt.fired ? InterruptedRun(id: id) : nil }
        } catch let e as InterruptedRun {
            await follower.close()
            try await handleInterrupt(e.id, choice: choice, follower: follower)
            return
        }
        await follower.close()
        let last = try journal.attempt(id, outcome.attempt)
        if outcome.state != .succeeded {
            Terminal.note("job \(id) \(outcome.state.rawValue): \(outcome.reason ?? "")")
        }
        let status = JobFollower.exitStatus(outcome, attempt: last)
        if status != 0 { throw ExitCode(status) }
    }

    struct InterruptedRun: Error { var id: Int }

    private func handleInterrupt(_ id: Int, choice: InterruptChoice, follower: JobFollower) async throws {
        if choice.answered("cancel job \(id)", cancel: "cancel it", leave: "leave it running") == .leave {
            Terminal.note("job \(id) keeps running; follow it with `drover logs \(id) --follow`, stop it with `drover cancel \(id)`")
            throw ExitCode(130)
        }
        _ = try follower.journal.requestCancel([id])
        Terminal.note("cancelling job \(id)…")
        let job = try await follower.waitFinal([id], timeout: 120).first
        Terminal.note("job \(id) \(job?.state.rawValue ?? "?")\(job?.reason.map { ": \($0)" } ?? "")")
        throw ExitCode(130)
    }
}
