import ArgumentParser
import DroverCoordinator
import DroverCore
import Foundation

/// The end of `drover run batch.json` and `drover map`: follow the batch with its progress
/// display, then print the summary and write report.json (and the joblog when asked).
enum BatchRun {
    static func follow(_ journal: Journal, batch: String, options: BatchOptions, onInterrupt: InterruptChoice?, eventsSince: Int? = nil) async throws {
        let interrupt = InterruptWatch()
        defer { interrupt.stop() }
        let follower = try BatchFollower(journal: journal, batch: batch, progress: options.progress, eventsSince: eventsSince)
        interrupt.wakes(follower.watch)
        var jobs = try await follower.follow { interrupt.fired }
        if interrupt.fired {
            try await handleInterrupt(journal, watch: follower.watch, batch: batch, jobs: jobs, choice: InterruptChoice.resolve(onInterrupt))
            jobs = try journal.batchJobs(batch)
        }
        if !interrupt.fired, try journal.batch(named: batch)?.compensateOnFailure == true, jobs.contains(where: { $0.state == .failed }) {
            try await followSaga(journal, batch: batch, watch: follower.watch) { interrupt.fired }
        }
        // With JSON progress, stdout stays JSON lines only: the summary goes to stderr.
        try report(journal, batch: batch, joblog: options.joblog, to: options.progress == .json ? .standardError : .standardOutput)
        if interrupt.fired { throw ExitCode(130) }
        if !jobs.allSatisfy({ $0.state == .succeeded }) { throw ExitCode(1) }
    }

    /// `compensate-on-failure`: waits (until Ctrl-C) while the coordinator undoes what succeeded.
    private static func followSaga(_ journal: Journal, batch: String, watch: JournalWatch, interrupted: () -> Bool) async throws {
        Terminal.note("batch \(batch) failed: compensating the jobs that succeeded (compensate-on-failure)…")
        _ = try await watch.reread({ try journal.batch(named: batch) }) { b in
            interrupted() || (b?.finishedAt != nil && b?.saga != "compensating")
        }
    }

    /// Prints the summary and writes report.json (and the joblog).
    static func report(_ journal: Journal, batch name: String, joblog: String?, print summary: Bool = true, to output: FileHandle = .standardOutput) throws {
        guard let batch = try journal.batch(named: name) else { return }
        let report = try BatchReport.build(journal, batch: batch)
        do { try report.write(to: batch.folder + "/report.json") } catch {
            Terminal.error("cannot write \(batch.folder)/report.json: \(error)")
        }
        if let joblog {
            do { try AtomicFile.write(Array(report.joblog.utf8), to: joblog, mode: 0o644) } catch {
                Terminal.error("cannot write the joblog \(joblog): \(error)")
            }
        }
        if summary { output.write(Data((report.summary() + "\n").utf8)) }
    }

    static func handleInterrupt(_ journal: Journal, watch: JournalWatch, batch: String, jobs: [JobRecord], choice: InterruptChoice) async throws {
        let open = jobs.filter { !$0.state.isFinal }.map(\.id)
        if open.isEmpty { return }
        if choice.answered("cancel the \(open.count) unfinished job(s) of batch \(batch)", cancel: "cancel them", leave: "leave them running") == .leave {
            Terminal.note("batch \(batch) keeps running: `drover wait \(batch)`, then `drover report \(batch)`; stop it with `drover cancel \(batch)`")
            return
        }
        _ = try journal.requestCancel(open)
        Terminal.note("cancelling \(open.count) job(s) of batch \(batch)…")
        _ = try await watch.reread(until: Date().addingTimeInterval(120), { try journal.jobs(open) }, done: { $0.allSatisfy(\.state.isFinal) })
    }
}
