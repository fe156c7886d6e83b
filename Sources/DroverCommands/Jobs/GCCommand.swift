import ArgumentParser
import DroverCoordinator
import DroverCore
import Foundation

/// `drover gc --before AGE`: forgets old finished jobs in the journal.
struct GCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove finished jobs, their attempts and their events from the journal once they are old enough.",
        discussion: """
            The journal keeps every job and every audit line until you run this. It removes jobs that ended (succeeded, failed, cancelled, skipped) before the given age, with their attempts and events; audit lines older than that which name no job; and batches finished before it with no job left; then the checkpoint files in the state folder's store that no remaining job's snapshot names (a running coordinator also removes those of jobs that succeeded, and snapshots replaced by newer ones). Jobs still queued or running, and jobs of a batch that has not finished, stay. Results folders are never touched. The hosts' agents clean their own state directories (see `drover reap --gc` and docs/agent.md, "Retention").

            Examples:
              drover gc --before 30d --dry-run
              drover gc --before 30d
            """
    )

    @OptionGroup var stateOptions: StateOptions

    @Option(name: .long, help: ArgumentHelp("Remove what ended more than this long ago: 30d, 12h, 90m.", valueName: "age"))
    var before: String

    @Flag(name: .long, help: "Only say what would be removed.")
    var dryRun = false

    func validate() throws {
        guard RetentionPolicy.duration(before) != nil else {
            throw ValidationError("--before must be an age such as 30d, 12h or 90m, not \"\(before)\"")
        }
    }

    func run() async throws {
        let age = RetentionPolicy.duration(before) ?? 0
        let journal = try stateOptions.openJournal(create: false)
        let p = try journal.prune(before: Date().timeIntervalSince1970 - age, dryRun: dryRun)
        print("\(dryRun ? "would remove" : "removed") \(p.jobs) job(s), \(p.attempts) attempt(s), \(p.events) event(s) and \(p.batches) batch(es) that ended more than \(before) ago")
        guard !dryRun else { return }
        let store = try journal.pruneCheckpointStore(now: Date().timeIntervalSince1970)
        if store.files > 0 { print("removed \(store.files) checkpoint file(s) (\(store.bytes) bytes) that no kept snapshot names from \(journal.checkpointStore)") }
    }
}
