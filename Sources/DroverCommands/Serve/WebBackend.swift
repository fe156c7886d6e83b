import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import DroverSSH
import DroverWeb
import Foundation

/// The actions of `drover serve`, done by the same code as `drover submit`, `cancel` and
/// `approve`: the API refuses what they refuse, with their words.
struct WebBackend: WebActions {
    /// `--state` and `--inventory` as `drover serve` got them (the options are not Sendable).
    let statePath: String?
    let inventoryPath: String?
    let inventory: Inventory
    let access: JournalAccess
    /// Where relative paths of batch files (inputs, results) start: where `drover serve` runs.
    let directory: String
    /// SSH connections for output, shared by its viewers.
    let sessions = SessionPool()

    func submitJob(arguments: [String]) async throws(WebActionError) -> Int {
        try Self.asCommand {
            let (words, command) = Self.split(arguments)
            let job = try JobOptions.parse(words)
            guard !command.isEmpty else { throw ValidationError("no command: put it after --, e.g. [\"--\", \"sage\", \"compute.sage\", \"17\"]") }
            return try Submission(job, command: command, state: state, inventory: inventoryOptions).id
        }
    }

    func submitBatch(content: [UInt8], file: String, arguments: [String]) async throws(WebActionError) -> BatchSubmitted {
        try Self.asCommand {
            let options = try BatchOptions.parse(arguments)
            let submission = try BatchSubmission.parse(content, file: file, baseDirectory: directory, options: options, inventory: inventory)
            let (_, result) = try submission.submit(state: state)
            return BatchSubmitted(batch: submission.spec.name, jobs: result.ids, kept: result.plan.kept.count)
        }
    }

    func cancel(_ jobs: [String]) async throws(WebActionError) -> [Int] {
        try Self.asCommand {
            let journal = try state.openJournal(create: false)
            let ids = try journal.resolveAll(jobs).map(\.id)
            let requested = try journal.requestCancel(ids)
            if !requested.isEmpty { try CoordinatorLauncher.ensureRunning(state: journal.state, inventory: inventory) }
            return requested
        }
    }

    func approve(_ gate: String) async throws(WebActionError) -> JobRecord {
        try Self.asCommand {
            let parts = gate.split(separator: "/").map(String.init)
            guard parts.count == 2 else { throw ValidationError("\(gate): name a gate as BATCH/JOB") }
            let journal = try state.openJournal(create: false)
            let job: JobRecord
            do { job = try journal.approve(parts[0], parts[1], by: "web:" + LocalUser.name) } catch let e as ApprovalError {
                throw WebActionError(status: 409, message: e.message)
            }
            try CoordinatorLauncher.ensureRunning(state: journal.state, inventory: inventory)
            return job
        }
    }

    func retry(_ jobs: [String], resetBudget: Bool) async throws(WebActionError) -> [RedriveOutcome] {
        try Self.asCommand {
            let journal = try state.openJournal(create: false)
            let ids = try RetryCommand.jobs(jobs, failedOnly: false, in: journal)
            guard !ids.isEmpty else { throw WebActionError(status: 409, message: "nothing to retry: no failed job in \(jobs.joined(separator: ", "))") }
            let outcomes = try RetryCommand.redrive(ids, resetBudget: resetBudget, by: "web:" + LocalUser.name, journal: journal) { inventory }
            if let refused = outcomes.first(where: { $0.refused != nil }), outcomes.count == 1 {
                throw WebActionError(status: 409, message: "\(refused.label): not retried: it is \(refused.refused ?? "")")
            }
            return outcomes
        }
    }

    var state: StateOptions { (try? StateOptions.parse(statePath.map { ["--state", $0] } ?? [])) ?? StateOptions() }
    var inventoryOptions: InventoryOptions { (try? InventoryOptions.parse(inventoryPath.map { ["--inventory", $0] } ?? [])) ?? InventoryOptions() }

    /// The words before `--` and the command after it.
    static func split(_ arguments: [String]) -> ([String], [String]) {
        guard let i = arguments.firstIndex(of: "--") else { return (arguments, []) }
        return (Array(arguments[..<i]), Array(arguments[(i + 1)...]))
    }

    /// Runs command code with its error messages caught: exit status 2 (bad input) becomes 400,
    /// others 500, each with the message the command line would print.
    static func asCommand<T>(_ body: () throws -> T) throws(WebActionError) -> T {
        let captured = Locked<[String]>([])
        do {
            return try Terminal.$captured.withValue(captured) { try body() }
        } catch let e as WebActionError {
            throw e
        } catch let e as ExitCode {
            let text = captured.withLock { $0.joined(separator: "\n") }
            throw WebActionError(status: e.rawValue == 2 ? 400 : e.rawValue == 3 ? 409 : 500, message: text.isEmpty ? "refused (exit status \(e.rawValue))" : text)
        } catch {
            // ArgumentParser's own errors (unknown option, bad value) and ValidationError.
            throw WebActionError(status: 400, message: JobOptions.message(for: error))
        }
    }

    func output(job: Int, attempt: Int, follow: Bool) -> AsyncThrowingStream<OutputChunk, any Error> {
        AttemptOutputStream(access: access, inventory: inventory, sessions: sessions).open(job: job, attempt: attempt, follow: follow)
    }
}
