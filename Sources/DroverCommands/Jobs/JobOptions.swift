import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import DroverProtocol

/// What a job asks for: shared by `run` and `submit`.
struct JobOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Run only on this host.", valueName: "name"))
    var host: String?

    @Option(name: .customLong("on"), help: ArgumentHelp("Run only on hosts with this label (repeatable; all must match).", valueName: "key=value"))
    var labels: [String] = []

    @Option(name: .long, help: ArgumentHelp("Slots the job takes on its host (default 1; a host has as many slots as CPUs unless hosts.json says otherwise).", valueName: "n"))
    var slots: Int = 1

    @Option(name: .long, help: ArgumentHelp("Higher runs first; equal priorities run in submission order.", valueName: "n"))
    var priority: Int = 0

    @Option(name: .long, help: ArgumentHelp("Wall-clock limit: 90, 90s, 15m, 2h, 1d. The job gets SIGTERM, then SIGKILL 10 s later.", valueName: "duration"))
    var timeout: String?

    @Option(name: .long, help: ArgumentHelp("How long the job keeps running on its host while the coordinator is silent (asleep, stopped, cut off), before its agent kills it: 30m, 12h, 2d (default: the coordinator's --lease-ttl, 6 h).", valueName: "duration"))
    var lease: String?

    @Flag(name: .long, help: "Never let the agent kill the job for want of a coordinator (no dead man's switch; a job re-run elsewhere may then run twice).")
    var keepRunning = false

    @Option(name: .long, help: ArgumentHelp("Re-runs after a failure (non-zero exit, signal, timeout), 1 s apart, then 2 s, 4 s… (batch files set the full policy).", valueName: "n"))
    var retries: Int = 0

    @Option(name: .long, help: ArgumentHelp("Re-runs after its host died or was cut off (a separate budget).", valueName: "n"))
    var lostRetries: Int = 3

    @Option(name: .long, help: ArgumentHelp("Memory limit (resident size of all its processes): 512M, 8G.", valueName: "size"))
    var mem: String?

    @Option(name: .long, help: ArgumentHelp("A name to find the job by (drover logs NAME).", valueName: "name"))
    var name: String?

    @Option(name: .long, help: ArgumentHelp("Working directory on the host (default: the user's home there).", valueName: "dir"))
    var cwd: String?

    @Option(name: .long, help: ArgumentHelp("An environment variable for the job (repeatable).", valueName: "key=value"))
    var env: [String] = []

    @Option(name: .long, help: ArgumentHelp("Files the job saves its progress in (a glob in its working directory; repeatable): snapshotted while it runs and restored when it runs again (docs/checkpoints.md).", valueName: "glob"))
    var checkpoint: [String] = []

    @Option(name: .customLong("checkpoint-every"), help: ArgumentHelp("How often to snapshot the --checkpoint files while the job runs (only when one changed): 30s, 5m (default: only at the end).", valueName: "duration"))
    var checkpointEvery: String?

    @Option(name: .customLong("checkpoint-exit-code"), help: ArgumentHelp("An exit with this code means \"I saved, restart me\": Drover snapshots and starts the job again at once, not counting a failure (HTCondor uses 85).", valueName: "n"))
    var checkpointExitCode: Int?

    @Option(name: .long, help: ArgumentHelp("GPUs the job needs on its host (counted like slots; it gets its own devices in CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES).", valueName: "n"))
    var gpus: Int = 0

    @Option(name: .long, help: ArgumentHelp("A host fact the job needs (repeatable): 'python>=3.11', 'gp=2.15', 'sage' (present); facts are named in hosts.json (docs/inventory.md#facts). The job waits for a host that has it.", valueName: "fact<op>version"))
    var require: [String] = []

    @Flag(name: .long, help: "Run COMMAND as one /bin/sh line on the host instead of exec'ing it.")
    var shell = false

    /// Exits 2 when single-job options are given with a batch file (its `defaults` set them).
    func refuseWithBatch() throws {
        var given: [String] = []
        if host != nil { given.append("--host") }
        if !labels.isEmpty { given.append("--on") }
        if slots != 1 { given.append("--slots") }
        if priority != 0 { given.append("--priority") }
        if timeout != nil { given.append("--timeout") }
        if retries != 0 { given.append("--retries") }
        if lease != nil { given.append("--lease") }
        if keepRunning { given.append("--keep-running") }
        if lostRetries != 3 { given.append("--lost-retries") }
        if mem != nil { given.append("--mem") }
        if name != nil { given.append("--name") }
        if cwd != nil { given.append("--cwd") }
        if !env.isEmpty { given.append("--env") }
        if shell { given.append("--shell") }
        if gpus != 0 { given.append("--gpus") }
        if !require.isEmpty { given.append("--require") }
        if !checkpoint.isEmpty || checkpointEvery != nil || checkpointExitCode != nil { given.append("--checkpoint") }
        if !given.isEmpty {
            Terminal.error("\(given.joined(separator: ", ")) apply to a single job; for a batch, set them in the file's `defaults` (docs/batches.md)")
            throw ExitCode(2)
        }
    }

    /// `--checkpoint`, `--checkpoint-every`, `--checkpoint-exit-code`, checked.
    private func checkpointSpec() throws -> CheckpointSpec? {
        guard !checkpoint.isEmpty else {
            if checkpointEvery != nil || checkpointExitCode != nil { throw ValidationError("--checkpoint-every and --checkpoint-exit-code need --checkpoint GLOB (the files to save)") }
            return nil
        }
        for g in checkpoint { if let p = CheckpointSpec.problem(glob: g) { throw ValidationError("--checkpoint \(p)") } }
        var spec = CheckpointSpec(paths: checkpoint)
        if let e = checkpointEvery {
            guard let t = Durations.parse(e), t > 0 else { throw ValidationError("--checkpoint-every \(e): not a duration (30s, 5m, 1h)") }
            spec.every = t
        }
        if let c = checkpointExitCode {
            guard (1...255).contains(c) else { throw ValidationError("--checkpoint-exit-code \(c): must be 1–255 (e.g. 85)") }
            spec.exitCode = c
        }
        return spec
    }

    /// The request, checked against the inventory; exits 2 with a clear message when it cannot run anywhere.
    func request(inventory: Inventory, command: [String]) throws -> JobRequest {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        guard !argv.isEmpty else { throw ValidationError("no command: put it after --, e.g. drover run -- sage compute.sage 17") }
        var r: JobRequest
        if shell {
            r = JobRequest(shell: argv.joined(separator: " "))
        } else {
            r = JobRequest(argv: argv)
        }
        r.name = name
        r.host = host
        r.slots = slots
        r.priority = priority
        r.retries = retries
        r.lostRetries = lostRetries
        r.cwd = cwd
        guard slots >= 1 else { throw ValidationError("--slots must be 1 or more") }
        guard retries >= 0, lostRetries >= 0 else { throw ValidationError("--retries and --lost-retries must be 0 or more") }
        if let timeout {
            guard let t = Durations.parse(timeout), t > 0 else { throw ValidationError("--timeout \(timeout): not a duration (90, 90s, 15m, 2h, 1d)") }
            r.timeout = t
        }
        if let lease {
            guard let t = Durations.parse(lease), t >= CoordinatorSettings.minimumJobLease else {
                throw ValidationError("--lease \(lease): not a duration of at least 30 s (30m, 12h, 2d); for no limit use --keep-running")
            }
            r.lease = t
        }
        if keepRunning { r.keepRunning = true }
        if let mem {
            guard let b = Durations.parseSize(mem), b > 0 else { throw ValidationError("--mem \(mem): not a size (512M, 8G, 1T, or bytes)") }
            r.memoryBytes = b
        }
        r.checkpoint = try checkpointSpec()
        guard gpus >= 0 else { throw ValidationError("--gpus must be 0 or more") }
        if gpus > 0 { r.gpus = gpus }
        for text in require {
            switch FactRequirement.parse(text) {
            case .success(let q): r.require = (r.require ?? [:]).merging([q.fact: q.op == .present ? "*" : q.requirementText]) { _, new in new }
            case .failure(let e): throw ValidationError("--require \(text): \(e)")
            }
        }
        for pair in labels {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else { throw ValidationError("--on \(pair): expected key=value") }
            r.labels[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        for pair in env {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else { throw ValidationError("--env \(pair): expected KEY=value") }
            r.env[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        if let problem = Placement.problem(r, inventory: inventory) {
            Terminal.error(problem)
            throw ExitCode(2)
        }
        return r
    }
}
