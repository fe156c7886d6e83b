import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// `drover submit`: queue a job and return.
struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Queue a job, or a batch file, and return (starts the coordinator when none runs).",
        discussion: """
            The job is written to the journal, then the coordinator places it on a host with a free slot: idle hosts first, higher --priority first, first in first out within a priority. Follow it with `drover logs ID --follow`, wait for it with `drover wait ID`.

            Examples:
              drover submit -- sage compute.sage 17
              drover submit --on gpu=yes --slots 4 --timeout 2h --retries 2 -- python3 train.py
              drover submit --shell -- 'gp -q < chunk-3.gp > out-3.txt'

            With a batch file (docs/batches.md) instead of a command, the batch is queued: jobs with dependencies, retry policies, inputs and outputs. Submitting a batch again runs only what did not succeed (and jobs whose spec changed); --restart runs all again.
              drover submit sweep.json
              drover submit sweep.json --dry-run
              drover submit sweep.json --limit 3 --fail-fast
            """
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions
    @Flag(name: .long, help: "Print {\"job\": ID} instead of the id alone.")
    var json = false
    @OptionGroup(title: "Batch options") var batch: BatchOptions
    @OptionGroup var job: JobOptions

    @Argument(help: ArgumentHelp("A batch file (*.json) to queue instead of a command.", valueName: "batch.json"))
    var batchFile: String?

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after --, passed byte for byte without a shell.", valueName: "command"))
    var command: [String] = []

    func run() async throws {
        if let submission = try BatchSubmission.named(batchFile, command: command, job: job, options: batch, inventory: inventoryOptions) {
            if batch.dryRun { return try submission.dryRun(state: stateOptions) }
            let (_, result) = try submission.submit(state: stateOptions)
            if json {
                print("{\"batch\":\(JSONText.quote(submission.spec.name)),\"jobs\":{\(result.ids.sorted { $0.key < $1.key }.map { "\(JSONText.quote($0.key)):\($0.value)" }.joined(separator: ","))},\"kept\":\(result.plan.kept.count)}")
            } else {
                print(submission.spec.name)
            }
            return
        }
        if batch.dryRun { return try Self.dryRun(job, command: command, state: stateOptions, inventory: inventoryOptions) }
        let id = try Submission(job, command: command, state: stateOptions, inventory: inventoryOptions).id
        print(json ? "{\"job\":\(id)}" : "\(id)")
    }
}

extension SubmitCommand {
    /// `--dry-run` of a single job: which hosts fit it and why the others do not.
    static func dryRun(_ job: JobOptions, command: [String], state: StateOptions, inventory options: InventoryOptions) throws {
        let inventory = try options.load()
        let request = try job.request(inventory: inventory, command: command)
        print("job: \(request.commandLine)")
        print("hosts (facts as last collected):")
        for line in HostFit(inventory: inventory, state: state.location).lines(for: request) { print(line) }
        print("nothing was submitted (--dry-run)")
    }
}

/// A job written to the journal, with a coordinator running to pick it up.
struct Submission {
    let id: Int
    let journal: Journal
    let inventory: Inventory

    /// Loads the inventory, checks the job against it, records it and starts the
    /// coordinator when none runs; exits with a clear message on any failure.
    init(_ job: JobOptions, command: [String], state: StateOptions, inventory options: InventoryOptions) throws {
        inventory = try options.load()
        let request = try job.request(inventory: inventory, command: command)
        journal = try state.openJournal()
        do { id = try journal.submit(request) } catch {
            Terminal.error("cannot record the job: \(error)")
            throw ExitCode(1)
        }
        try CoordinatorLauncher.ensureRunning(state: journal.state, inventory: inventory)
    }
}
