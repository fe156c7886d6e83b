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
        let inventory = try inventoryOptions.load()
        let request = try job.request(inventory: inventory)
        let journal = try stateOptions.openJournal()
        let id = try Submission.submit(request, journal: journal, inventory: inventory)
        print(json ? "{\"job\":\(id)}" : "\(id)")
    }
}

enum Submission {
    /// Writes the job to the journal and makes sure a coordinator will pick it up.
    static func submit(_ request: JobRequest, journal: Journal, inventory: Inventory) throws -> Int {
        let id: Int
        do { id = try journal.submit(request) } catch {
            Terminal.error("cannot record the job: \(error)")
            throw ExitCode(1)
        }
        try CoordinatorLauncher.ensureRunning(state: journal.state, inventory: inventory)
        return id
    }
}
