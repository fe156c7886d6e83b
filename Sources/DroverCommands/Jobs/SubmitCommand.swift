import ArgumentParser
import DroverCoordinator
import DroverInventory
import Foundation

/// `drover submit`: queue a job and return.
struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Queue a job and print its id (starts the coordinator when none runs).",
        discussion: """
            The job is written to the journal, then the coordinator places it on a host with a free slot: idle hosts first, higher --priority first, first in first out within a priority. Follow it with `drover logs ID --follow`, wait for it with `drover wait ID`.

            Examples:
              drover submit -- sage compute.sage 17
              drover submit --on gpu=yes --slots 4 --timeout 2h --retries 2 -- python3 train.py
              drover submit --shell -- 'gp -q < chunk-3.gp > out-3.txt'
            """
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions
    @Flag(name: .long, help: "Print {\"job\": ID} instead of the id alone.")
    var json = false
    @OptionGroup var job: JobOptions

    func run() async throws {
        let id = try Submission(job, state: stateOptions, inventory: inventoryOptions).id
        print(json ? "{\"job\":\(id)}" : "\(id)")
    }
}

/// A job written to the journal, with a coordinator running to pick it up.
struct Submission {
    let id: Int
    let journal: Journal
    let inventory: Inventory

    /// Loads the inventory, checks the job against it, records it and starts the
    /// coordinator when none runs; exits with a clear message on any failure.
    init(_ job: JobOptions, state: StateOptions, inventory options: InventoryOptions) throws {
        inventory = try options.load()
        let request = try job.request(inventory: inventory)
        journal = try state.openJournal()
        do { id = try journal.submit(request) } catch {
            Terminal.error("cannot record the job: \(error)")
            throw ExitCode(1)
        }
        try CoordinatorLauncher.ensureRunning(state: journal.state, inventory: inventory)
    }
}
