import ArgumentParser
import DroverCoordinator
import DroverCore

/// `drover report`: a batch's summary and JSON report.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarise a batch (counts, failures with their stderr, hosts) and write results/<batch>/report.json.",
        discussion: """
            Works at any time, also while the batch runs. The JSON report lists every job with every attempt (host, start, end, exit code or signal, reason, max RSS, CPU seconds) and totals; its schema is docs/batch-report.schema.json.

            Examples:
              drover report primes
              drover report primes --json | jq '.totals'
              drover report primes --joblog primes.joblog
            """
    )

    @OptionGroup var stateOptions: StateOptions

    @Flag(name: .long, help: "Print the JSON report instead of the summary.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Also write GNU parallel's joblog columns to FILE.", valueName: "file"))
    var joblog: String?

    @Argument(help: ArgumentHelp("The batch name.", valueName: "batch"))
    var batch: String

    func run() async throws {
        let journal = try stateOptions.openJournal(create: false)
        guard let record = try journal.batch(named: batch) else {
            let known = try journal.batches().map(\.name).prefix(10)
            Terminal.error("no batch \(batch) in \(journal.state.journalPath)\(known.isEmpty ? "" : "; batches: \(known.joined(separator: ", "))")")
            throw ExitCode(2)
        }
        try BatchRun.report(journal, batch: record.name, joblog: joblog, print: !json)
        if json { print(try BatchReport.build(journal, batch: record).json) }
    }
}
