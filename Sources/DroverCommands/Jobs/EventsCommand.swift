import ArgumentParser
import DroverCoordinator
import DroverInventory
import Foundation

/// `drover events`: the audit trail.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print the audit trail: every job, attempt and host state change, with time and reason.",
        discussion: """
            Examples:
              drover events
              drover events --job 12
              drover events --follow --json | jq .
            """
    )

    @OptionGroup var stateOptions: StateOptions

    /// Events read per query.
    static let page = 10_000

    @Flag(name: .shortAndLong, help: "Keep printing new events as they are recorded (Ctrl-C to stop).")
    var follow = false

    @OptionGroup var start: CoordinatorStartOptions

    @Flag(name: .long, help: "One JSON object per line.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Only events of this job (id, name, BATCH/JOB) or of every job of a batch.", valueName: "job"))
    var job: String?

    @Option(name: .long, help: ArgumentHelp("Only events after this event id.", valueName: "id"))
    var after: Int = 0

    func run() async throws {
        let location = stateOptions.location
        if !location.exists && !follow {
            print(json ? "" : "no events yet (state directory \(location.path))")
            return
        }
        let journal = try stateOptions.openJournal()
        // Following: wake on each commit (created before the first read, so none is missed).
        let watch = follow ? try JournalWatch(journal) : nil
        defer { watch?.stop() }
        let jobIDs = try job.map { try journal.resolveAll([$0]).map(\.id) }
        if follow { try CoordinatorPresence.ensure(journal, inventory: nil, noStart: start.noStart) }
        var last = after
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS"
        while true {
            let batch = try journal.events(after: last, jobs: jobIDs, limit: Self.page)
            for e in batch {
                if json {
                    print(String(decoding: try encoder.encode(e), as: UTF8.self))
                } else {
                    print("\(f.string(from: Date(timeIntervalSince1970: e.time)))  \(e.kind.padding(toLength: 16, withPad: " ", startingAt: 0)) \(e.message)")
                }
                last = e.id
            }
            FileHandle.standardOutput.synchronizeFile()
            // A full page: read the next one at once (also without --follow).
            if batch.count == Self.page { continue }
            guard let watch else { return }
            try await watch.next(until: nil)
        }
    }
}
