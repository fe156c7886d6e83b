import ArgumentParser
import DroverCoordinator
import DroverInventory
import DroverCore
import Foundation

/// `drover ps` / `drover status`: the jobs in the journal.
struct PsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps",
        abstract: "List jobs: id, name, state, host, attempt, elapsed time, exit status.",
        discussion: """
            Without job arguments: unfinished jobs and the 20 most recent finished ones (--all for every job). With job arguments (ids or names): those jobs. `drover status` also shows every attempt of each job.

            When jobs are unfinished but no coordinator runs (it crashed, was killed, its machine rebooted), the states in the journal do not move: ps and status start it, as run and submit do, and say how old the states shown are; with --no-start they only say that none runs and how old the states are.

            Examples:
              drover ps
              drover ps --all --json
              drover ps --failed
              drover status 12
            """
    )



    @OptionGroup var options: JobListOptions

    struct JobView: Encodable {
        var job: JobRecord
        var attempts: [AttemptRecord]
        func encode(to encoder: any Encoder) throws {
            try job.encode(to: encoder)
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(attempts, forKey: .attempts)
        }
        enum Key: String, CodingKey { case attempts }
    }

    func run() async throws {
        try await options.list(detailed: false)
    }
}

/// What `ps` and `status` take.
struct JobListOptions: ParsableArguments {
    @OptionGroup var stateOptions: StateOptions

    @OptionGroup var start: CoordinatorStartOptions

    @Flag(name: .long, help: "Every job, not only unfinished and recent ones.")
    var all = false

    @Flag(name: .long, help: "Print JSON: the jobs, each with its attempts.")
    var json = false

    @Flag(name: .long, help: "Only failed jobs (dead letters), with why they failed and the head of their stderr; re-drive them with `drover retry`.")
    var failed = false

    @Argument(help: ArgumentHelp("Job ids or names.", valueName: "job"))
    var jobs: [String] = []

    /// Prints the jobs; `detailed` adds every attempt of each.
    func list(detailed: Bool) async throws {
        let location = stateOptions.location
        guard location.exists else {
            if json { print("[]") } else { print("no jobs yet (state directory \(location.path))") }
            return
        }
        let journal = try stateOptions.openJournal(create: false)
        try CoordinatorPresence.ensure(journal, inventory: nil, noStart: start.noStart)
        if failed { return try listFailed(journal) }
        var list: [JobRecord]
        if !jobs.isEmpty {
            list = try journal.resolveAll(jobs)
        } else {
            list = try journal.jobs()
            if !all {
                let finished = list.filter(\.state.isFinal).suffix(20).map(\.id)
                list = list.filter { !$0.state.isFinal || finished.contains($0.id) }
            }
        }
        if json {
            print(try Terminal.json(try list.map { PsCommand.JobView(job: $0, attempts: try journal.attempts(of: $0.id)) }))
            return
        }
        let now = Date().timeIntervalSince1970
        var rows = [["ID", "NAME", "STATE", "HOST", "ATTEMPT", "ELAPSED", "EXIT", "COMMAND"]]
        for j in list {
            let exit = j.exitCode.map(String.init) ?? j.signal.map { "SIG\($0)" } ?? "-"
            rows.append([String(j.id), j.name ?? "-", j.state.rawValue, j.host ?? "-", j.attempt == 0 ? "-" : String(j.attempt),
                         j.elapsed(now: now).map(Self.duration) ?? "-", j.state.isFinal ? exit : "-", String(j.request.commandLine.prefix(60))])
        }
        var text = TextTable.render(rows)
        if detailed {
            for j in list {
                text += "\n\njob \(j.id)\(j.name.map { " (\($0))" } ?? ""): \(j.state.rawValue)\(j.reason.map { " — \($0)" } ?? "")"
                var arows = [["ATTEMPT", "HOST", "STATE", "STARTED", "ENDED", "EXIT", "MAX RSS", "CPU s", "NOTE"]]
                for a in try journal.attempts(of: j.id) {
                    arows.append([String(a.attempt), a.host, a.state + (a.stale ? " (replaced)" : ""), a.startedAt.map(Self.clock) ?? "-", a.endedAt.map(Self.clock) ?? "-",
                                  a.exitCode.map(String.init) ?? a.signal.map { "SIG\($0)" } ?? "-", Terminal.bytes(a.maxRSSBytes.map { UInt64($0) }),
                                  a.cpuSeconds.map { String(format: "%.2f", $0) } ?? "-", a.reason ?? ""])
                }
                text += "\n" + TextTable.render(arows)
                if let c = try journal.checkpoint(of: j.id) {
                    text += "\ncheckpoint: snapshot \(c.index) of attempt \(c.attempt) (on \(c.host)), \(Self.duration(max(0, now - c.takenAt))) old, \(c.files.count) file(s), \(c.bytes < 1 << 20 ? "\(c.bytes) bytes" : Terminal.bytes(UInt64(c.bytes)))"
                }
            }
        }
        print(text)
    }

    /// `--failed`: the dead letters, each with its reason and the head of its stderr.
    func listFailed(_ journal: Journal) throws {
        var letters = try journal.deadLetters()
        if !jobs.isEmpty {
            let wanted = Set(try journal.resolveAll(jobs).map(\.id))
            letters = letters.filter { wanted.contains($0.job.id) }
        }
        for i in letters.indices where letters[i].stderrHead == nil {
            letters[i].stderrHead = Self.storedStderrHead(letters[i].job, journal: journal)
        }
        if json {
            print(try Terminal.json(letters))
            return
        }
        guard !letters.isEmpty else {
            print("no failed jobs")
            return
        }
        var rows = [["ID", "NAME", "HOST", "ATTEMPT", "EXIT", "REASON"]]
        for l in letters {
            let j = l.job
            rows.append([String(j.id), j.name ?? "-", j.host ?? "-", j.attempt == 0 ? "-" : String(j.attempt),
                         j.exitCode.map(String.init) ?? j.signal.map { "SIG\($0)" } ?? "-", String((j.reason ?? "-").prefix(100))])
        }
        var text = TextTable.render(rows)
        for l in letters {
            guard let head = l.stderrHead?.trimmingCharacters(in: .whitespacesAndNewlines), !head.isEmpty else { continue }
            let lines = head.split(separator: "\n", omittingEmptySubsequences: false).prefix(3).map { "    " + $0 }
            text += "\n\n\(l.job.label) stderr:\n" + lines.joined(separator: "\n")
        }
        print(text + "\n\nre-drive with: drover retry JOB… (or BATCH, or --failed for all); see docs/failures.md")
    }

    /// The head of a job's last stderr from the files kept on this machine (single jobs' inline
    /// output, or a batch job's results folder), when the journal has none.
    static func storedStderrHead(_ job: JobRecord, journal: Journal) -> String? {
        var bytes = AttemptOutput.read(state: journal.state, job: job.id, attempt: job.attempt)?.stderr
        if bytes == nil, let batch = job.batch, let id = job.batchJob, let b = try? journal.batch(named: batch) {
            bytes = try? LocalFile.read(b.folder + "/" + id + "/stderr")
        }
        return bytes.flatMap { $0.isEmpty ? nil : String(decoding: $0.prefix(400), as: UTF8.self) }
    }

    static func duration(_ s: Double) -> String {
        if s < 60 { return String(format: "%.1fs", s) }
        if s < 3600 { return "\(Int(s) / 60)m\(String(format: "%02d", Int(s) % 60))s" }
        return "\(Int(s) / 3600)h\(String(format: "%02d", Int(s) % 3600 / 60))m"
    }

    static func clock(_ t: Double) -> String {
        let f = DateFormatter()
        f.dateFormat = "HH:mm:ss"
        return f.string(from: Date(timeIntervalSince1970: t))
    }
}

/// `drover status`: `ps` with every attempt of each job.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show jobs with every attempt (host, times, exit, memory, CPU, why it ended).",
        discussion: """
            Examples:
              drover status 12
              drover status sweep-3 --json
            """
    )

    @OptionGroup var options: JobListOptions

    func run() async throws {
        try await options.list(detailed: true)
    }
}
