import ArgumentParser
import DroverCoordinator
import DroverInventory

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

    @Flag(name: .long, help: "Run COMMAND as one /bin/sh line on the host instead of exec'ing it.")
    var shell = false

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command and its arguments (after --), passed byte for byte without a shell.", valueName: "command"))
    var command: [String] = []

    /// The request, checked against the inventory; exits 2 with a clear message when it cannot run anywhere.
    func request(inventory: Inventory) throws -> JobRequest {
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
        if let mem {
            guard let b = Durations.parseSize(mem), b > 0 else { throw ValidationError("--mem \(mem): not a size (512M, 8G, 1T, or bytes)") }
            r.memoryBytes = b
        }
        for pair in labels {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else { throw ValidationError("--on \(pair): expected key=value") }
            r.labels[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        for pair in env {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else { throw ValidationError("--env \(pair): expected KEY=value") }
            r.env[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        if let host, inventory.host(named: host) == nil {
            Terminal.error("--host \(host): no such host in \(inventory.source); hosts: \(inventory.hosts.map(\.name).joined(separator: ", "))")
            throw ExitCode(2)
        }
        let probe = SchedulerJob(id: 0, slots: 1, host: r.host, labels: r.labels)
        let candidates = inventory.hosts.filter { probe.fits(SchedulerHost(name: $0.name, slots: Int.max, used: 0, labels: $0.labels)) }
        if candidates.isEmpty {
            let known = inventory.hosts.map { h in "\(h.name)" + (h.labels.isEmpty ? "" : " (" + h.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ")") }
            Terminal.error("no host in \(inventory.source) matches \(labels.map { "--on \($0)" }.joined(separator: " "))\(host.map { " --host \($0)" } ?? ""); hosts: \(known.joined(separator: "; "))")
            throw ExitCode(2)
        }
        if let largest = candidates.compactMap(\.slots).max(), candidates.allSatisfy({ $0.slots != nil }), slots > largest {
            Terminal.error("--slots \(slots): the largest matching host has \(largest) slot(s) (hosts.json `slots`)")
            throw ExitCode(2)
        }
        return r
    }
}
