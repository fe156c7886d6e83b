import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// Turns `drover map`'s options, command and inputs into a batch: one job per input (or per
/// `-N` group), each a `/bin/sh -c` line with its values quoted (argv with `-q`).
struct MapBuilder {
    let options: MapOptions
    let inventory: Inventory
    let batchOptions: BatchOptions
    let state: StateOptions
    /// `-S`/`--host`: the hosts the jobs may run on (nil: any).
    let hosts: [String]?

    /// What the map runs, and what its output printer needs.
    struct Built {
        var spec: BatchSpec
        /// `--tag`/`--tagstring`: each job's prefix.
        var tags: [String]?
        /// Each job's values (`--results-layout parallel` names its folders by them).
        var values: [[String]] = []
        /// Job numbers left out (`--resume`/`--resume-failed` with a joblog).
        var skipped: Set<Int> = []
    }

    init(options: MapOptions, inventory: Inventory, state: StateOptions) throws {
        self.options = options
        self.inventory = inventory
        self.state = state
        hosts = try Self.sshLogin(options, inventory: inventory)
        let drovers = options.parallelResults ? nil : options.results
        var args = ["--results", drovers ?? state.location.path + "/map-results", "--progress", (options.progress ?? .none).rawValue]
        if options.halt.when == .now && options.halt.why == .fail && options.halt.count == 1 && !options.halt.percent { args.append("--fail-fast") }
        if !(options.resume || options.resumeFailed) || options.joblog != nil { args.append("--restart") }
        batchOptions = try BatchOptions.parse(args)
    }

    /// `-S`: inventory hosts by name (`:` is this machine's host), `N/` prefixes ignored
    /// (the host's slots count). nil: every host (also when all are named).
    private static func sshLogin(_ o: MapOptions, inventory: Inventory) throws -> [String]? {
        guard !o.sshLogins.isEmpty else { return o.host.map { [$0] } }
        var names: [String] = []
        for login in o.sshLogins {
            var name = login
            if let slash = name.firstIndex(of: "/"), Int(name[..<slash]) != nil {
                name = String(name[name.index(after: slash)...])
                Terminal.note("-S \(login): the number before / is ignored: a host runs as many jobs as its slots allow (hosts.json `slots`; -j N shares them)")
            }
            if name == ":" {
                guard let local = inventory.hosts.first(where: { $0.transport == .local }) else {
                    Terminal.error("-S :: the inventory \(inventory.source) has no host on this machine (one with \"address\": \"local\")")
                    throw ExitCode(2)
                }
                name = local.name
            } else if name == ".." {
                continue
            }
            guard inventory.host(named: name) != nil else {
                Terminal.error("-S \(login): no host \(name) in \(inventory.source) (-S takes inventory host names: \(inventory.hosts.map(\.name).joined(separator: ", ")))")
                throw ExitCode(2)
            }
            if !names.contains(name) { names.append(name) }
        }
        if let h = o.host, !names.contains(h) {
            Terminal.error("--host \(h) is not one of the hosts of -S \(o.sshLogins.joined(separator: ","))")
            throw ExitCode(2)
        }
        if let h = o.host { return [h] }
        if names.isEmpty || names.count == inventory.hosts.count { return nil }
        return names
    }

    /// The batch for the command `template` and its input sources.
    func batch(template words: [String], sources: [MapArguments.Source], linked: [Bool]) throws -> Built {
        let inputs: MapInputList
        do {
            inputs = try MapInputList.read(sources, linked: linked, options: options) { () throws(MapInputList.Problem) -> [UInt8] in
                if isatty(0) == 1 { throw MapInputList.Problem(message: "no inputs: give them after :::, in a file after :::: or -a, or on stdin (one per line)") }
                return Array(FileHandle.standardInput.readDataToEndOfFile())
            }
        } catch {
            Terminal.error(error.message)
            throw ExitCode(2)
        }
        let template: MapTemplate
        do { template = try MapTemplate(inputs.renaming(words, replace: options.replace), shell: !options.quote, noArguments: options.maxArgs == 0) } catch {
            Terminal.error("\(error.message); e.g. drover map 'gzip -9 {}' ::: a.txt b.txt")
            throw ExitCode(2)
        }
        var base = try jobOptions().request(inventory: inventory, command: ["true"])
        base.argv = nil
        if let hosts, hosts.count > 1 { base.hosts = hosts }
        if template.usesSlot { base.fillsSlot = true }
        var jobs: [BatchJob] = []
        let values = inputs.jobs
        var built = Built(spec: BatchSpec(name: "", jobs: [], file: "drover map"))
        let name = try options.name ?? freeName("map-" + hexString(SHA256.hash(Array((template.words.joined(separator: "\u{0}") + (template.shell ? "\u{1}" : "")).utf8))).prefix(8))
        guard BatchNames.isValid(name) else {
            Terminal.error("--name \(name): a batch name may use only \(BatchNames.rule)")
            throw ExitCode(2)
        }
        let joblog = try MapJoblog.previous(options)
        // --resume without a joblog: the jobs of the same map that failed before stay failed
        // (those that succeeded are kept by the batch's own resume).
        let failedBefore = options.resume && options.joblog == nil ? try failedJobs(of: name) : []
        for (i, v) in values.enumerated() {
            if failedBefore.contains(String(i + 1)) || joblog?.skips(i + 1, resumeFailed: options.resumeFailed) == true {
                built.skipped.insert(i + 1)
                continue
            }
            var r = base
            r.inputs = try transferFiles(v, seq: i + 1)
            if !options.returns.isEmpty { r.outputs = options.returns.map { Self.expandWord($0, v, seq: i + 1) } }
            let expanded = template.expand(v, seq: i + 1)
            if template.shell { r.shell = expanded.first ?? "" } else { r.argv = expanded }
            jobs.append(BatchJob(id: String(i + 1), request: r, path: "input \(i + 1)"))
        }
        if options.retryFailed, let joblog {
            // parallel's --retry-failed: the failed commands of the joblog, run again as they were.
            jobs = joblog.failed.map { row in
                var r = base
                r.shell = row.command
                return BatchJob(id: String(row.seq), request: r, path: "joblog line \(row.seq)")
            }
        }
        if options.tag || options.tagString != nil {
            built.tags = values.enumerated().map { i, v in options.tagString.map { Self.expandWord($0, v, seq: i + 1) } ?? v.joined(separator: " ") }
        }
        built.values = values
        built.spec = BatchSpec(name: name, jobs: jobs, file: "drover map")
        return built
    }

    /// `base`, or with -2, -3, … when the same command still runs in another map (which a
    /// new run must not cancel); a resume keeps `base`.
    private func freeName(_ base: String) throws -> String {
        let location = state.location
        guard !(options.resume || options.resumeFailed), location.exists else { return base }
        let db = try SQLiteDatabase(path: location.journalPath)
        var name = base
        var n = 1
        while try Journal.existingJobs(db, batch: name).values.contains(where: { !$0.state.isFinal }) {
            n += 1
            name = base + "-\(n)"
        }
        return name
    }

    /// The jobs of batch `name` that ended other than succeeded, from the journal (none without one).
    private func failedJobs(of name: String) throws -> Set<String> {
        let location = state.location
        guard location.exists else { return [] }
        let db = try SQLiteDatabase(path: location.journalPath)
        return Set(try Journal.existingJobs(db, batch: name).filter { $0.value.state.isFinal && $0.value.state != .succeeded }.keys)
    }

    /// Drover's job options from parallel's (`--timeout`, `--retries`, `-j`) and Drover's own.
    private func jobOptions() throws -> JobOptions {
        let o = options
        var args: [String] = []
        if let hosts, hosts.count == 1 { args += ["--host", hosts[0]] }
        for l in o.labels { args += ["--on", l] }
        if let t = o.timeout {
            // A percentage of the median runtime is applied by the map as it follows (MapTimeout).
            let percent: Double?
            do { percent = try MapTimeout.percent(t) } catch {
                Terminal.error("\(error)")
                throw ExitCode(2)
            }
            if percent != nil && o.detach {
                Terminal.error("--timeout \(t) with --detach: the map applies a percentage of the median runtime while it follows the jobs; give seconds (--timeout 60) or leave out --detach")
                throw ExitCode(2)
            }
            if percent == nil { args += ["--timeout", t] }
        }
        if let r = o.retries { args += ["--retries", String(max(0, r - 1))] }
        if let s = try o.slots ?? slotsFromJobs() { args += ["--slots", String(s)] }
        if let p = o.priority { args += ["--priority", String(p)] }
        if let m = o.mem { args += ["--mem", m] }
        for e in o.env { args += ["--env", e] }
        if let c = o.cwd { args += ["--cwd", c] }
        if let l = o.lostRetries { args += ["--lost-retries", String(l)] }
        if let l = o.lease { args += ["--lease", l] }
        if o.keepRunning { args.append("--keep-running") }
        do { return try JobOptions.parse(args) } catch {
            Terminal.error(JobOptions.message(for: error))
            throw ExitCode(2)
        }
    }

    /// `-j`: jobs per host, as slots per job. A host has `slots` slots (hosts.json, else its
    /// CPUs); `-j N` makes each job take slots/N of them, so N run at once on it.
    private func slotsFromJobs() throws -> Int? {
        guard let j = options.jobs else { return nil }
        let hosts = inventory.hosts.filter { self.hosts?.contains($0.name) ?? true }
        // A host without `slots` in the inventory has as many as CPUs, known once it was probed.
        var probed: [String: Int] = [:]
        if state.location.exists, let db = try? SQLiteDatabase(path: state.location.journalPath) {
            for h in (try? Journal.readHosts(db)) ?? [] { if let n = h.slots { probed[h.name] = n } }
        }
        let known = hosts.compactMap { $0.slots ?? probed[$0.name] }
        guard known.count == hosts.count, let slots = known.min() else {
            Terminal.note("-j \(j): each job takes one slot, the slots of some hosts are not known yet (hosts.json `slots` sets them)")
            return nil
        }
        let perHost: Int
        if j.hasSuffix("%"), let p = Int(j.dropLast()) { perHost = slots * p / 100 } else if j.hasPrefix("+"), let n = Int(j.dropFirst()) { perHost = slots + n } else if j.hasPrefix("-"), let n = Int(j.dropFirst()) { perHost = slots - n } else if let n = Int(j) { perHost = n == 0 ? slots : n } else {
            Terminal.error("-j \(j): expected N, +N, -N or N%")
            throw ExitCode(2)
        }
        return max(1, slots / max(1, perHost))
    }

    /// One word (`--tagstring`, `--transferfile`, `--return`) with a job's values in place of its
    /// replacement strings, unquoted; several values of `{}` one space apart.
    static func expandWord(_ word: String, _ values: [String], seq: Int) -> String {
        guard let t = try? MapTemplate([word, "{#}"], shell: false) else { return word }
        let words = t.expand(values, seq: seq).dropLast()
        return MapTemplate.fillSlot([words.joined(separator: " ")], slot: 1)[0]
    }

    /// `--transferfile FILE`: uploaded into each job's working directory at the same relative path.
    private func transferFiles(_ values: [String], seq: Int) throws -> [InputFile]? {
        guard !options.transferFiles.isEmpty else { return nil }
        return try options.transferFiles.map { Self.expandWord($0, values, seq: seq) }.map { path in
            let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
            guard let sha = try? LocalFile.sha256(absolute) else {
                Terminal.error("--transferfile \(path): cannot read the file")
                throw ExitCode(2)
            }
            let relative = path.hasPrefix("/") ? (path as NSString).lastPathComponent : path
            return InputFile(source: absolute, path: relative, sha256: sha, mode: 0o644)
        }
    }
}
