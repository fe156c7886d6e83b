import DroverCore

/// Everything the agent needs to run one attempt; stored as `spec.json` in its folder.
public struct AttemptSpec: Sendable, Equatable {
    public var id: AttemptID
    /// The program and its arguments, passed to exec with no shell.
    public var argv: [String]
    /// A shell line, run with `/bin/sh -c`, when the spec asks for a shell instead of an argv.
    public var shell: String?
    public var cwd: String?
    /// Run in a fresh folder of the attempt (`attempts/JOB/N/work`) when no `cwd` is given.
    public var workdir: Bool
    /// Files of the agent's store (`files/<sha256>`) placed in the working directory before the job starts.
    public var inputs: [InputLink]
    public var env: [String: String]
    /// Wall-clock limit in seconds.
    public var timeout: Double?
    /// Seconds between SIGTERM and SIGKILL when stopping the job.
    public var grace: Double
    public var memoryBytes: UInt64?
    public var cpuSeconds: Int?
    public var openFiles: Int?
    public var coreDumps: Bool
    /// Added to the job's nice value (default 10), so the agent's heartbeat keeps its pace.
    public var nice: Int
    /// Keep running when the coordinator's lease expires.
    public var keepRunning: Bool
    /// Seconds this attempt survives without a lease renewal from its coordinator (nil: the
    /// lease file's own `ttl`, the coordinator's default).
    public var lease: Double?
    /// The coordinator that started it (matched against the lease).
    public var coordinator: String?
    /// Files the shim snapshots while the job runs and at its end (docs/checkpoints.md).
    public var checkpoint: CheckpointSpec?
    /// The GPUs it asks for and, once the agent accepted it, the devices it got.
    public var gpus: GPUGrant?

    public init(id: AttemptID, argv: [String], shell: String? = nil) {
        self.id = id
        self.argv = argv
        self.shell = shell
        cwd = nil
        workdir = false
        inputs = []
        env = [:]
        timeout = nil
        grace = 10
        memoryBytes = nil
        cpuSeconds = nil
        openFiles = nil
        coreDumps = false
        nice = 10
        keepRunning = false
        lease = nil
        coordinator = nil
        checkpoint = nil
        gpus = nil
    }

    /// The argv actually executed.
    public var commandLine: [String] {
        if let shell { return ["/bin/sh", "-c", shell] }
        return argv
    }

    public var json: String {
        var o = JSONObject()
        o.set("job", id.job)
        o.set("attempt", id.attempt)
        o.set("argv", argv)
        o.set("shell", shell)
        o.set("cwd", cwd)
        if workdir { o.set("workdir", true) }
        if !inputs.isEmpty {
            o.set("inputs", objects: inputs.map { i in
                var e = JSONObject()
                e.set("path", i.path)
                e.set("sha256", i.sha256)
                return e
            })
        }
        o.set("env", env)
        o.set("timeout", timeout)
        o.set("grace", grace)
        var limits = JSONObject()
        limits.set("memory_bytes", memoryBytes)
        limits.set("cpu_seconds", cpuSeconds)
        limits.set("open_files", openFiles)
        limits.set("core_dumps", coreDumps)
        o.set("limits", object: limits)
        o.set("nice", nice)
        o.set("keep_running", keepRunning)
        if let lease { o.set("lease", lease) }
        o.set("coordinator", coordinator)
        if let checkpoint { o.set("checkpoint", object: checkpoint.jsonObject) }
        if let gpus { o.set("gpus", object: gpus.jsonObject) }
        return o.text
    }

    /// Parses and validates a spec; every problem is reported with its field path.
    public static func parse(_ node: JSONNode, file: String) -> Result<AttemptSpec, SpecError> {
        let d = ConfigDiagnostics(file: file)
        guard var r = ObjectReader(node, path: "", diagnostics: d) else { return .failure(SpecError(d.issues)) }
        let job = r.string("job")
        let attempt = r.int("attempt")
        if job == nil, r.node("job") == nil { d.report("missing `job`", path: "", at: node.position) }
        if let job, !AttemptID.isValidJob(job) {
            d.report("job id \"\(job)\" may use only letters, digits, '-', '_', '.' (not first), at most 128", path: "job", at: r.node("job")?.position)
        }
        if let attempt, attempt < 1 { d.report("attempt must be 1 or more", path: "attempt", at: r.node("attempt")?.position) }
        var argv: [String] = []
        if let n = r.node("argv") {
            if let a = n.stringArray { argv = a } else { d.report("must be an array of strings", path: "argv", at: n.position) }
        }
        let shell = r.string("shell")
        if argv.isEmpty && shell == nil { d.report("needs `argv` (a non-empty array) or `shell` (a shell line)", path: "", at: node.position) }
        if !argv.isEmpty && shell != nil { d.report("give `argv` or `shell`, not both", path: "shell", at: r.node("shell")?.position) }
        if argv.contains(where: { $0.utf8.contains(0) }) || (shell?.utf8.contains(0) ?? false) {
            d.report("arguments must not contain NUL bytes", path: "argv", at: r.node("argv")?.position)
        }
        var spec = AttemptSpec(id: AttemptID(job: job ?? "x", attempt: attempt ?? 1), argv: argv, shell: shell)
        spec.cwd = r.string("cwd")
        spec.workdir = r.bool("workdir") ?? false
        if let n = r.node("inputs") {
            for (i, item) in (n.arrayValue ?? []).enumerated() {
                let path = item["path"]?.stringValue ?? ""
                let sha = item["sha256"]?.stringValue ?? ""
                guard LocalFile.staysInside(path), SHA256.isHexDigest(sha) else {
                    d.report("needs a relative `path` inside the working directory (no .., not absolute) and a lower-case hex `sha256`", path: "inputs[\(i)]", at: item.position)
                    continue
                }
                spec.inputs.append(InputLink(path: path, sha256: sha))
            }
            if n.arrayValue == nil { d.report("must be an array", path: "inputs", at: n.position) }
        }
        spec.env = r.stringMap("env") ?? [:]
        for key in spec.env.keys where key.isEmpty || key.contains("=") {
            d.report("\"\(key)\" is not a valid environment variable name", path: "env", at: r.node("env")?.position)
        }
        if let t = r.double("timeout") {
            if t > 0 { spec.timeout = t } else { d.report("timeout must be positive seconds", path: "timeout", at: r.node("timeout")?.position) }
        }
        if let g = r.double("grace") {
            if g >= 0 { spec.grace = g } else { d.report("grace must be 0 or more seconds", path: "grace", at: r.node("grace")?.position) }
        }
        if let ln = r.node("limits"), var lr = ObjectReader(ln, path: "limits", diagnostics: d) {
            if let m = lr.int("memory_bytes") {
                if m > 0 { spec.memoryBytes = UInt64(m) } else { d.report("must be positive", path: "limits.memory_bytes", at: lr.node("memory_bytes")?.position) }
            }
            if let c = lr.int("cpu_seconds") {
                if c > 0 { spec.cpuSeconds = c } else { d.report("must be positive", path: "limits.cpu_seconds", at: lr.node("cpu_seconds")?.position) }
            }
            if let f = lr.int("open_files") {
                if f > 2 { spec.openFiles = f } else { d.report("must be at least 3", path: "limits.open_files", at: lr.node("open_files")?.position) }
            }
            spec.coreDumps = lr.bool("core_dumps") ?? false
            lr.finish()
        }
        if let n = r.int("nice") {
            if (0...19).contains(n) { spec.nice = n } else { d.report("nice must be 0–19", path: "nice", at: r.node("nice")?.position) }
        }
        spec.keepRunning = r.bool("keep_running") ?? false
        if let l = r.double("lease") {
            if l > 0 { spec.lease = l } else { d.report("lease must be positive seconds", path: "lease", at: r.node("lease")?.position) }
        }
        spec.coordinator = r.string("coordinator")
        if let n = r.node("checkpoint") { spec.checkpoint = CheckpointSpec.parse(n, path: "checkpoint", diagnostics: d) }
        if let n = r.node("gpus") { spec.gpus = GPUGrant.parse(n, path: "gpus", diagnostics: d) }
        r.finish()
        if !d.issues.isEmpty { return .failure(SpecError(d.issues)) }
        return .success(spec)
    }
}

/// An input file: `files/<sha256>` of the agent's store, linked to `path` in the working directory.
public struct InputLink: Sendable, Equatable {
    public var path: String
    public var sha256: String

    public init(path: String, sha256: String) {
        self.path = path
        self.sha256 = sha256
    }
}

/// A rejected spec or command, with every problem found.
public struct SpecError: Error, Sendable, CustomStringConvertible {
    public var issues: [ConfigIssue]
    public init(_ issues: [ConfigIssue]) { self.issues = issues }
    public init(_ message: String, file: String) { issues = [ConfigIssue(file: file, position: nil, path: "", message: message)] }
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}
