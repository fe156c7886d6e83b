import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// `drover logs`: a job's output, from its host.
struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print a job's stdout (or stderr) from its host; --follow keeps printing until it ends.",
        discussion: """
            The output is read from the agent's state directory on the job's host, so the host must be reachable. By default the latest attempt that started; --attempt picks another.

            Examples:
              drover logs 12
              drover logs sweep-3 --follow
              drover logs 12 --stderr --attempt 1
            """
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions

    @Flag(name: .shortAndLong, help: "Keep printing as the job writes, until it ends (across re-runs on other hosts).")
    var follow = false

    @OptionGroup var start: CoordinatorStartOptions

    @Flag(name: .long, help: "Print stderr instead of stdout.")
    var stderr = false

    @Option(name: .long, help: ArgumentHelp("This attempt instead of the latest.", valueName: "n"))
    var attempt: Int?

    @Argument(help: ArgumentHelp("A job id or name, BATCH/JOB, or a batch (the output of each of its jobs, from results/ when fetched).", valueName: "job"))
    var job: String

    func run() async throws {
        let journal = try stateOptions.openJournal(create: false)
        if Int(job) == nil, let batch = try journal.batch(named: job) {
            try printBatch(batch, journal: journal)
            return
        }
        guard let record = try journal.resolveAll([job]).first else { throw ExitCode(2) }
        if follow { try CoordinatorPresence.ensure(journal, inventory: inventoryOptions.inventory, noStart: start.noStart) }
        let follower = try JobFollower(journal: journal, inventory: try inventoryOptions.load())
        if follow && attempt == nil {
            // Output of the current attempt, then of any re-run, until the job ends.
            _ = try await follower.followStreams(record.id, stdout: !stderr, stderr: stderr)
            await follower.close()
            return
        }
        let attempts = try journal.attempts(of: record.id).filter { $0.agentState != nil && $0.agentState != "never_started" }
        guard let chosen = attempt.map({ n in attempts.first { $0.attempt == n } }) ?? attempts.last else {
            if let attempt {
                Terminal.error("job \(record.id) has no attempt \(attempt) that started (attempts: \(attempts.map { String($0.attempt) }.joined(separator: ", ")))")
            } else {
                Terminal.error("job \(record.id) has not started yet (\(record.state.rawValue)); use --follow to wait for its output")
            }
            throw ExitCode(1)
        }
        do {
            try await follower.copyOutput(chosen, follow: follow, stdout: !stderr, stderr: stderr)
        } catch let e as ExitCode {
            throw e
        } catch {
            Terminal.error("cannot read the output of job \(record.id) on \(chosen.host): \(error)")
            await follower.close()
            throw ExitCode(1)
        }
        await follower.close()
    }

    /// Every job of a batch, one after the other under a `==> BATCH/JOB <==` header, from the
    /// results folder (the output of each job's final attempt).
    private func printBatch(_ batch: BatchRecord, journal: Journal) throws {
        if follow || attempt != nil {
            Terminal.error("--follow and --attempt take one job: `drover logs \(batch.name)/JOB`")
            throw ExitCode(2)
        }
        for j in try journal.batchJobs(batch.name) {
            let path = batch.folder + "/" + (j.batchJob ?? "") + "/" + (stderr ? "stderr" : "stdout")
            print("==> \(j.label) (\(j.state.rawValue)) <==")
            if let bytes = try? LocalFile.read(path) {
                fflush(nil)
                FileHandle.standardOutput.write(Data(bytes))
                if bytes.last != UInt8(ascii: "\n"), !bytes.isEmpty { print("") }
            } else {
                print(j.state.isFinal ? "(no output fetched)" : "(not finished: drover logs \(j.label) --follow)")
            }
        }
    }
}
