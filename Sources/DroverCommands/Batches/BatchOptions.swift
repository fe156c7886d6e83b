import ArgumentParser

/// How a batch's progress is shown by `drover run`/`map`.
enum ProgressChoice: String, ExpressibleByArgument, CaseIterable {
    /// A live display on a terminal, one line per change otherwise.
    case auto
    case bar, lines, json, none
}

/// What `submit`, `run` and `map` take for a batch.
struct BatchOptions: ParsableArguments {
    @Flag(name: .long, help: "Cancel the rest of the batch when a job fails for good (GNU parallel's --halt now,fail=1).")
    var failFast = false

    @Flag(name: .long, help: "Run every job whose dependencies allow it, whatever else fails (the default; overrides the file's policy).")
    var keepGoing = false

    @Flag(name: .long, help: "Print the plan (dependency order, hosts, uploads, what a resume keeps; for a single job, which hosts fit it and why the others do not: --require, --gpus) and change nothing.")
    var dryRun = false

    @Option(name: .long, help: ArgumentHelp("Run only the first N jobs in dependency order, for a trial; submitting again later runs the rest.", valueName: "n"))
    var limit: Int?

    @Flag(name: .long, help: "Run every job again, also those that succeeded before (unfinished ones are cancelled).")
    var restart = false

    @Option(name: .long, help: ArgumentHelp("Where results go: DIR/<batch>/<job>/ (stdout, stderr, outputs) and DIR/<batch>/report.json.", valueName: "dir"))
    var results: String = "results"

    @Option(name: .long, help: ArgumentHelp("How run/map show progress: auto (a live display on a terminal, one line per change otherwise), bar, lines, json (one JSON object per line), none.", valueName: "mode"))
    var progress: ProgressChoice = .auto

    @Option(name: .long, help: ArgumentHelp("At the end, also write GNU parallel's joblog (Seq Host Starttime JobRuntime Send Receive Exitval Signal Command) to FILE.", valueName: "file"))
    var joblog: String?

    func validate() throws {
        if failFast && keepGoing { throw ValidationError("--fail-fast and --keep-going exclude each other") }
        if let limit, limit < 1 { throw ValidationError("--limit must be 1 or more") }
    }

    /// The file's policy, overridden by a flag.
    func failFast(file: Bool) -> Bool { failFast ? true : (keepGoing ? false : file) }
}
