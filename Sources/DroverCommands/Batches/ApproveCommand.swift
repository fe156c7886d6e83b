import ArgumentParser
import DroverCoordinator
import DroverCore

/// `drover approve`: complete an approval gate of a batch.
struct ApproveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Approve a gate of a batch, so the jobs after it run.",
        discussion: """
            An approval gate is a batch job with "approval": true: it runs nothing, and completes when someone approves it (or fails after its timeout). Put one before an expensive or irreversible stage. `drover status BATCH` shows the gates waiting (state `approval`).

            Examples:
              drover approve primes/go-ahead
            """
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions

    @Argument(help: ArgumentHelp("Gates to approve, as BATCH/JOB.", valueName: "batch/job"))
    var gates: [String]

    func validate() throws {
        if gates.isEmpty { throw ValidationError("name a gate as BATCH/JOB (see `drover status BATCH`)") }
        for g in gates where g.split(separator: "/").count != 2 { throw ValidationError("\(g): name a gate as BATCH/JOB") }
    }

    func run() async throws {
        let journal = try stateOptions.openJournal(create: false)
        var failed = false
        for g in gates {
            let parts = g.split(separator: "/").map(String.init)
            do {
                let job = try journal.approve(parts[0], parts[1], by: LocalUser.name)
                print("\(job.label) approved")
            } catch let e as ApprovalError {
                Terminal.error(e.message)
                failed = true
            }
        }
        // The coordinator releases the jobs after the gate; make sure one runs.
        try CoordinatorLauncher.ensureRunning(state: journal.state, inventory: try inventoryOptions.load())
        if failed { throw ExitCode(1) }
    }
}
