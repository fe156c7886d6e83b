import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// A batch on its way into the journal: checked against the inventory, planned, recorded.
struct BatchSubmission {
    var spec: BatchSpec
    let options: BatchOptions
    let inventory: Inventory

    /// For `run` and `submit`: the batch file named on the command line, read and checked; nil
    /// for a command after `--`. Exits 2 when both are given, or single-job options with a file.
    static func named(_ file: String?, command: [String], job: JobOptions, options: BatchOptions, inventory: InventoryOptions) throws -> BatchSubmission? {
        guard let file else { return nil }
        if !command.isEmpty {
            Terminal.error("give a batch file or a command after --, not both (\(file) and \(command.joined(separator: " ")))")
            throw ExitCode(2)
        }
        if !file.hasSuffix(".json") {
            Terminal.error("\(file): put a command after -- (drover run -- \(file) …); a batch file name ends in .json")
            throw ExitCode(2)
        }
        try job.refuseWithBatch()
        return try read(file, options: options, inventory: try inventory.load())
    }

    /// Reads a batch file; prints every problem (with its path in the file) and exits 2 on any.
    static func read(_ path: String, options: BatchOptions, inventory: Inventory) throws -> BatchSubmission {
        guard LocalFile.exists(path) else {
            Terminal.error("\(path): no such batch file")
            throw ExitCode(2)
        }
        let spec: BatchSpec
        do { spec = try BatchReader.read(path) } catch {
            throw unusable(path, error)
        }
        return try BatchSubmission(spec, options: options, inventory: inventory)
    }

    /// A batch file's content that did not come from a file here (`drover serve`'s API): checked
    /// and worded as `read` does, relative paths taken from `baseDirectory`.
    static func parse(_ content: [UInt8], file: String, baseDirectory: String, options: BatchOptions, inventory: Inventory) throws -> BatchSubmission {
        let spec: BatchSpec
        do { spec = try BatchReader.parse(content, file: file, baseDirectory: baseDirectory) } catch {
            throw unusable(file, error)
        }
        return try BatchSubmission(spec, options: options, inventory: inventory)
    }

    /// Prints every problem of an unusable batch file; the exit status to throw.
    private static func unusable(_ path: String, _ error: BatchFileError) -> ExitCode {
        Terminal.error("\(path): the batch cannot be used:\n" + error.issues.map { "  " + $0.description }.joined(separator: "\n"))
        return ExitCode(2)
    }

    /// Checks every job's placement against the inventory (exits 2 naming each job that cannot run anywhere).
    init(_ spec: BatchSpec, options: BatchOptions, inventory: Inventory) throws {
        self.spec = spec
        self.spec.failFast = options.failFast(file: spec.failFast)
        self.options = options
        self.inventory = inventory
        let problems = spec.jobs.compactMap { j in Placement.problem(j.request, inventory: inventory).map { "  \(spec.file): \(j.path) (\(j.id)): \($0)" } }
        if !problems.isEmpty {
            Terminal.error("some jobs can run on no host:\n" + problems.joined(separator: "\n"))
            throw ExitCode(2)
        }
    }

    /// The results root as an absolute path.
    var resultsRoot: String {
        let r = LocalUser.expand(options.results)
        return r.hasPrefix("/") ? r : FileManager.default.currentDirectoryPath + "/" + r
    }

    /// Records the batch and makes sure a coordinator runs; exits 2 when the batch is still running.
    func submit(state: StateOptions, quiet: Bool = false) throws -> (Journal, BatchSubmitResult) {
        let journal = try state.openJournal()
        let result: BatchSubmitResult
        do {
            result = try journal.submitBatch(spec, results: resultsRoot, restart: options.restart, limit: options.limit)
        } catch let e as BatchPlanError {
            Terminal.error(e.message)
            throw ExitCode(2)
        } catch {
            Terminal.error("cannot record the batch: \(error)")
            throw ExitCode(1)
        }
        try CoordinatorLauncher.ensureRunning(state: journal.state, inventory: inventory)
        if let warning = HostFit(inventory: inventory, state: journal.state).spreadWarning(spec.jobs.map(\.request), batch: spec.name) {
            Terminal.warning(warning)
        }
        let plan = result.plan
        var note = "batch \(spec.name): \(plan.run.count) job(s) submitted"
        if !plan.kept.isEmpty { note += ", \(plan.kept.count) kept (succeeded before with the same spec)" }
        if !plan.limitedOut.isEmpty { note += ", \(plan.limitedOut.count) left for later (--limit)" }
        if !quiet { Terminal.note(note + "; results in \(resultsRoot)/\(spec.name)/") }
        return (journal, result)
    }

    /// `run` and `map`: the dry run, or submit and follow the batch to its end (with
    /// `detach`, print its name and return).
    func run(state: StateOptions, detach: Bool, onInterrupt: InterruptChoice?) async throws {
        if options.dryRun { return try dryRun(state: state) }
        let (journal, result) = try submit(state: state)
        if detach {
            print(spec.name)
            return
        }
        try await BatchRun.follow(journal, batch: spec.name, options: options, onInterrupt: onInterrupt, eventsSince: result.eventsBefore)
    }

    // MARK: Dry run

    /// Prints what submitting would do, without writing anything.
    func dryRun(state: StateOptions) throws {
        var existing: [String: BatchPlan.Existing] = [:]
        var hostRecords: [HostRecord] = []
        var coordinator = false
        if state.location.exists, LocalFile.exists(state.location.journalPath) {
            let db = try SQLiteDatabase(path: state.location.journalPath)
            existing = (try? Journal.existingJobs(db, batch: spec.name)) ?? [:]
            hostRecords = (try? Journal.readHosts(db)) ?? []
            coordinator = state.location.runningCoordinator() != nil
        }
        let plan: BatchPlan
        do { plan = try BatchPlan.make(spec, existing: existing, restart: options.restart, limit: options.limit) } catch {
            Terminal.error(error.message)
            throw ExitCode(2)
        }
        let up = Set(hostRecords.filter { $0.state == "up" }.map(\.name))
        let usable = coordinator && !up.isEmpty ? inventory.hosts.filter { up.contains($0.name) } : inventory.hosts
        let slotsKnown = Dictionary(hostRecords.compactMap { h in h.slots.map { (h.name, $0) } }) { a, _ in a }
        let fit = HostFit(inventory: inventory, state: state.location)
        let usableNames = Set(usable.map(\.name))
        let hosts = fit.hosts(slots: slotsKnown).filter { usableNames.contains($0.name) }.map { h in
            var h = h
            if h.slots == Int.max { h.slots = 1 }
            return h
        }
        print("batch \(spec.name) (\(spec.file)), \(spec.failFast ? "fail-fast" : "keep-going"): \(spec.jobs.count) job(s) — \(plan.run.count) to run, \(plan.kept.count) kept from before\(plan.limitedOut.isEmpty ? "" : ", \(plan.limitedOut.count) left out by --limit")")
        print(coordinator && !up.isEmpty
              ? "hosts up now: \(hosts.map { "\($0.name) (\($0.slots) slots)" }.joined(separator: ", "))"
              : "host states unknown (no coordinator running): placing on every host of \(inventory.source): \(hosts.map { "\($0.name) (\($0.slots) slots)" }.joined(separator: ", "))")
        var rows = [["#", "JOB", "AFTER", "WHERE", "WHY", "COMMAND"]]
        let placed = Self.simulate(plan.run.map(\.job), on: hosts)
        for (i, item) in plan.run.enumerated() {
            let after = item.job.dependencies.map { $0.condition == .ok ? $0.job : "\($0.job):\($0.condition.rawValue)" }.joined(separator: ",")
            rows.append([String(i + 1), item.job.id, after.isEmpty ? "-" : after, placed[item.job.id] ?? "no host up fits",
                         item.why, String(item.job.request.commandLine.prefix(50))])
        }
        for id in plan.kept { rows.append(["-", id, "-", "kept", "succeeded before, same spec", ""]) }
        for id in plan.limitedOut { rows.append(["-", id, "-", "later", "--limit", ""]) }
        print(TextTable.render(rows))
        var shown: Set<String> = []
        for item in plan.run where (item.job.request.gpus ?? 0) > 0 || !(item.job.request.require ?? [:]).isEmpty {
            let key = "\(item.job.request.gpus ?? 0)|\(item.job.request.requirements)|\(item.job.request.labels)|\(item.job.request.host ?? "")"
            guard shown.insert(key).inserted else { continue }
            print("hosts for \(item.job.id)\(shown.count > 1 || plan.run.count == 1 ? "" : " (and the jobs asking the same)"):")
            for line in fit.lines(for: item.job.request) { print(line) }
        }
        if let warning = fit.spreadWarning(plan.run.map(\.job.request), batch: spec.name) { print("warning: " + warning) }
        printUploads(plan)
        if !plan.retire.isEmpty || !plan.cancel.isEmpty {
            print("replaces \(plan.retire.count) earlier job record(s)\(plan.cancel.isEmpty ? "" : ", cancelling \(plan.cancel.count) unfinished")")
        }
        print("results would go to \(resultsRoot)/\(spec.name)/")
        print("nothing was submitted (--dry-run)")
    }

    private func printUploads(_ plan: BatchPlan) {
        var files: [String: (path: String, size: Int, jobs: Int)] = [:]
        var fromInputs: [String] = []
        for (job, _) in plan.run {
            for input in job.request.inputs ?? [] {
                if let from = input.from {
                    fromInputs.append("\(job.id) ← \(input.source) of \(from)")
                } else if let sha = input.sha256 {
                    files[sha, default: (input.source, LocalFile.size(input.source) ?? 0, 0)].jobs += 1
                }
            }
        }
        guard !files.isEmpty || !fromInputs.isEmpty else { return }
        let total = files.values.reduce(0) { $0 + $1.size }
        print("uploads (each file at most once per host, by content):")
        for (sha, f) in files.sorted(by: { $0.value.path < $1.value.path }) {
            print("  \(f.path)  \(Terminal.bytes(UInt64(f.size)))  sha256 \(sha.prefix(12))…  used by \(f.jobs) job(s)")
        }
        if !files.isEmpty { print("  \(files.count) file(s), \(Terminal.bytes(UInt64(total))) in all") }
        for line in fromInputs.prefix(10) { print("  \(line) (fetched results, uploaded when the job starts)") }
        if fromInputs.count > 10 { print("  … \(fromInputs.count - 10) more") }
    }

    /// Where each job would start if all ran in waves on the hosts given (dependencies aside).
    static func simulate(_ jobs: [BatchJob], on hosts: [SchedulerHost]) -> [String: String] {
        var out: [String: String] = [:]
        var used = [String: Int]()
        var wave = 1
        for job in jobs {
            let probe = SchedulerJob(id: 0, slots: job.request.slots, host: job.request.host, labels: job.request.labels, gpus: job.request.gpus ?? 0, requirements: job.request.requirements, hosts: job.request.hostSet)
            let fitting = hosts.filter { probe.fits(SchedulerHost(name: $0.name, slots: Int.max, used: 0, labels: $0.labels, gpus: $0.gpus)) && $0.slots >= job.request.slots }
            guard !fitting.isEmpty else { continue }
            func free(_ h: SchedulerHost) -> Int { h.slots - used[h.name, default: 0] }
            if fitting.allSatisfy({ free($0) < job.request.slots }) {
                wave += 1
                used.removeAll()
            }
            let best = fitting.max { Double(free($0)) / Double($0.slots) < Double(free($1)) / Double($1.slots) }!
            used[best.name, default: 0] += job.request.slots
            out[job.id] = "\(best.name) (wave \(wave))"
        }
        return out
    }
}
