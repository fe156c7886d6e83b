import DroverCore
import DroverProtocol
import Foundation

/// A batch file that cannot be used, with every problem found (file:line:column: path: message).
public struct BatchFileError: Error, Sendable, CustomStringConvertible {
    public var issues: [ConfigIssue]
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

/// Reads and checks a batch file (docs/batches.md): every problem is reported at once, with
/// its path in the file; local inputs are resolved and hashed.
public struct BatchReader {
    /// The fields a job (or `defaults`) may set.
    public static let jobFields = [
        "id", "argv", "shell", "host", "on", "slots", "priority", "timeout", "lease", "keep_running", "memory", "cwd", "env",
        "retries", "lost_retries", "retry", "after", "inputs", "outputs", "approval", "checkpoint", "gpus", "require",
    ]

    let file: String
    let baseDirectory: String
    let diagnostics: ConfigDiagnostics
    private var hashes: [String: (String, Int)] = [:]

    /// Reads `path`; relative input paths are taken from the file's folder.
    public static func read(_ path: String) throws(BatchFileError) -> BatchSpec {
        let bytes: [UInt8]
        do { bytes = try LocalFile.read(path) } catch {
            throw BatchFileError(issues: [ConfigIssue(file: path, position: nil, path: "", message: "cannot read the batch file: \(error)")])
        }
        let base = (path as NSString).deletingLastPathComponent
        return try parse(bytes, file: path, baseDirectory: base.isEmpty ? "." : base)
    }

    /// Parses batch file contents.
    public static func parse(_ bytes: [UInt8], file: String, baseDirectory: String) throws(BatchFileError) -> BatchSpec {
        var reader = BatchReader(file: file, baseDirectory: baseDirectory, diagnostics: ConfigDiagnostics(file: file))
        let node: JSONNode
        do { node = try JSONParser.parse(bytes) } catch {
            throw BatchFileError(issues: [ConfigIssue(file: file, position: error.position, path: "", message: "not valid JSON: \(error.message)")])
        }
        let spec = reader.batch(node)
        if !reader.diagnostics.issues.isEmpty { throw BatchFileError(issues: reader.diagnostics.issues) }
        return spec!
    }

    private mutating func batch(_ node: JSONNode) -> BatchSpec? {
        guard var r = ObjectReader(node, path: "", diagnostics: diagnostics) else { return nil }
        _ = r.string("$schema")
        _ = r.string("description")
        let fallback = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        let name = r.string("batch") ?? fallback
        if !BatchNames.isValid(name) {
            diagnostics.report("batch name \"\(name)\" may use only \(BatchNames.rule)\(r.node("batch") == nil ? " (it comes from the file name; set `batch`)" : "")", path: "batch", at: r.node("batch")?.position ?? node.position)
        }
        var failFast = false
        if let p = r.string("policy") {
            switch p {
            case "keep-going": failFast = false
            case "fail-fast": failFast = true
            default: diagnostics.report("must be \"keep-going\" (the default) or \"fail-fast\"", path: "policy", at: r.node("policy")?.position)
            }
        }
        var defaults = Fields()
        if let d = r.node("defaults"), var dr = ObjectReader(d, path: "defaults", diagnostics: diagnostics) {
            readFields(&dr, into: &defaults, isDefaults: true)
            dr.finish()
        }
        var jobs: [BatchJob] = []
        if let list = r.node("jobs") {
            if let items = list.arrayValue {
                if items.isEmpty { diagnostics.report("a batch needs at least one job", path: "jobs", at: list.position) }
                for (i, item) in items.enumerated() {
                    if let j = job(item, path: "jobs[\(i)]", defaults: defaults) { jobs.append(j) }
                }
            } else {
                diagnostics.report("must be an array of jobs, not \(list.kindDescription)", path: "jobs", at: list.position)
            }
        } else {
            diagnostics.report("missing `jobs` (an array of jobs)", path: "", at: node.position)
        }
        r.finish()
        for p in BatchGraph.problems(jobs) { diagnostics.report(p.message, path: p.path, at: nil) }
        checkFromInputs(jobs)
        return BatchSpec(name: name, failFast: failFast, jobs: jobs, file: file)
    }

    /// The fields of a job; also what `defaults` holds.
    struct Fields {
        var request = JobRequest(argv: [])
        var hasCommand = false
        var fromInputs: [(job: String, pattern: String, path: String)] = []
        var inputsSet = false
    }

    private mutating func job(_ node: JSONNode, path: String, defaults: Fields) -> BatchJob? {
        guard var r = ObjectReader(node, path: path, diagnostics: diagnostics) else { return nil }
        var f = defaults
        f.hasCommand = false
        f.request.argv = nil
        f.request.shell = nil
        let id = r.string("id")
        if r.node("id") == nil { diagnostics.report("missing `id` (unique in the batch)", path: path, at: node.position) }
        if let id, !BatchNames.isValid(id) {
            diagnostics.report("job id \"\(id)\" may use only \(BatchNames.rule)", path: "\(path).id", at: r.node("id")?.position)
        }
        readFields(&r, into: &f, isDefaults: false)
        r.finish()
        let approval = f.request.approval == true
        if approval && f.hasCommand {
            diagnostics.report("an approval gate runs nothing: remove `argv`/`shell`, or `approval`", path: path, at: node.position)
        } else if !approval && !f.hasCommand {
            diagnostics.report("needs `argv` (an array: program and arguments) or `shell` (a /bin/sh line)", path: path, at: node.position)
        }
        if approval { f.request.argv = ["true"] }
        guard let id else { return nil }
        var request = f.request
        request.name = nil
        for input in f.fromInputs {
            request.inputs = (request.inputs ?? []) + [InputFile(source: input.pattern, path: input.path, from: input.job)]
        }
        return BatchJob(id: id, request: request, path: path)
    }

    // MARK: Fields

    private mutating func readFields(_ r: inout ObjectReader, into f: inout Fields, isDefaults: Bool) {
        let p = r.path
        if isDefaults {
            for k in ["id", "argv", "shell", "after", "approval"] where r.node(k) != nil {
                diagnostics.report("`\(k)` cannot have a default; set it on each job", path: r.childPath(k), at: r.node(k)?.position)
            }
        } else {
            _ = r.node("id")
        }
        if let n = r.node("argv"), !isDefaults {
            if let a = n.stringArray, !a.isEmpty, !a.contains(where: { $0.utf8.contains(0) }) {
                f.request.argv = a
                f.hasCommand = true
            } else {
                diagnostics.report("must be a non-empty array of strings (program first), without NUL bytes", path: "\(p).argv", at: n.position)
            }
        }
        if let s = r.string("shell"), !isDefaults {
            if f.hasCommand {
                diagnostics.report("give `argv` or `shell`, not both", path: "\(p).shell", at: r.node("shell")?.position)
            } else if s.isEmpty || s.utf8.contains(0) {
                diagnostics.report("must be a non-empty /bin/sh line without NUL bytes", path: "\(p).shell", at: r.node("shell")?.position)
            } else {
                f.request.shell = s
                f.hasCommand = true
            }
        }
        if let h = r.string("host") { f.request.host = h }
        if let labels = r.stringMap("on") { f.request.labels.merge(labels) { _, new in new } }
        if let s = r.int("slots") {
            if s >= 1 { f.request.slots = s } else { diagnostics.report("must be 1 or more", path: "\(p).slots", at: r.node("slots")?.position) }
        }
        if let v = r.int("priority") { f.request.priority = v }
        if let n = r.node("timeout") {
            if let t = duration(n, path: "\(p).timeout") { f.request.timeout = t }
        }
        if let n = r.node("lease") {
            if let t = duration(n, path: "\(p).lease") {
                if t >= CoordinatorSettings.minimumJobLease { f.request.lease = t } else {
                    diagnostics.report("must be at least 30 s (the coordinator renews its lease every 10 s); for no limit set `keep_running: true`", path: "\(p).lease", at: n.position)
                }
            }
        }
        if let k = r.bool("keep_running") { f.request.keepRunning = k ? true : nil }
        if let n = r.node("memory") {
            let bytes = n.intValue.map { UInt64(max($0, 0)) } ?? n.stringValue.flatMap(Durations.parseSize)
            if let bytes, bytes > 0 { f.request.memoryBytes = bytes } else {
                diagnostics.report("must be a size such as \"512M\", \"8G\", or bytes", path: "\(p).memory", at: n.position)
            }
        }
        if let c = r.string("cwd") { f.request.cwd = c }
        if let env = r.stringMap("env") {
            for key in env.keys where key.isEmpty || key.contains("=") || key.utf8.contains(0) {
                diagnostics.report("\"\(key)\" is not a valid environment variable name", path: "\(p).env", at: r.node("env")?.position)
            }
            f.request.env.merge(env) { _, new in new }
        }
        if let n = r.int("retries") {
            if n >= 0 { f.request.retries = n } else { diagnostics.report("must be 0 or more", path: "\(p).retries", at: r.node("retries")?.position) }
        }
        if let n = r.int("lost_retries") {
            if n >= 0 { f.request.lostRetries = n } else { diagnostics.report("must be 0 or more", path: "\(p).lost_retries", at: r.node("lost_retries")?.position) }
        }
        if let n = r.node("retry") { f.request.retry = retry(n, path: "\(p).retry") }
        if let n = r.node("after"), !isDefaults { f.request.after = after(n, path: "\(p).after") }
        if let n = r.node("inputs") {
            f.fromInputs = []
            f.request.inputs = inputs(n, path: "\(p).inputs", from: &f.fromInputs)
        }
        if let n = r.node("outputs") { f.request.outputs = outputs(n, path: "\(p).outputs") }
        if let n = r.node("checkpoint") { f.request.checkpoint = CheckpointSpec.parse(n, path: "\(p).checkpoint", diagnostics: diagnostics, duration: Durations.parse) }
        if let a = r.bool("approval"), !isDefaults { f.request.approval = a ? true : nil }
        if let n = r.node("gpus") {
            if let g = n.intValue, g >= 0 { f.request.gpus = g > 0 ? g : nil } else { diagnostics.report("must be a number of GPUs, 0 or more", path: "\(p).gpus", at: n.position) }
        }
        if let n = r.node("require") {
            let map = n.stringMap ?? [:]
            if n.objectMembers == nil || map.count != n.objectMembers?.count {
                diagnostics.report("must be an object of host facts and versions, e.g. {\"python\": \">=3.11\"}", path: "\(p).require", at: n.position)
            }
            for (fact, text) in map.sorted(by: { $0.key < $1.key }) {
                if case .failure(let e) = FactRequirement.parse(fact: fact, text) { diagnostics.report(e.description, path: "\(p).require.\(fact)", at: n[fact]?.position) }
            }
            f.request.require = (f.request.require ?? [:]).merging(map) { _, new in new }
        }
    }

    private func duration(_ n: JSONNode, path: String) -> Double? {
        if let d = n.doubleValue, d > 0 { return d }
        if let s = n.stringValue, let d = Durations.parse(s), d > 0 { return d }
        diagnostics.report("must be a positive duration: seconds, or \"90s\", \"15m\", \"2h\", \"1d\"", path: path, at: n.position)
        return nil
    }

    private func retry(_ node: JSONNode, path: String) -> RetryPolicy? {
        guard var r = ObjectReader(node, path: path, diagnostics: diagnostics) else { return nil }
        var policy = RetryPolicy()
        if let n = r.int("max_attempts") {
            if n >= 1 { policy.maxAttempts = n } else { diagnostics.report("must be 1 or more (1 = no retry)", path: "\(path).max_attempts", at: r.node("max_attempts")?.position) }
        }
        var maxGiven = false
        if let n = r.node("initial") {
            if let z = n.doubleValue, z == 0 { policy.initial = 0 } else if let d = duration(n, path: "\(path).initial") { policy.initial = d }
        }
        if let m = r.double("multiplier") {
            if m >= 1 { policy.multiplier = m } else { diagnostics.report("must be 1 or more", path: "\(path).multiplier", at: r.node("multiplier")?.position) }
        }
        if let n = r.node("max") {
            if let z = n.doubleValue, z == 0 { policy.max = 0; maxGiven = true } else if let d = duration(n, path: "\(path).max") { policy.max = d; maxGiven = true }
        }
        if !maxGiven { policy.max = policy.initial * 100 }
        if let j = r.double("jitter") {
            if (0...1).contains(j) { policy.jitter = j } else { diagnostics.report("must be between 0 and 1 (0.1 = ±10 %)", path: "\(path).jitter", at: r.node("jitter")?.position) }
        }
        if let n = r.node("on") {
            if let items = n.arrayValue, !items.isEmpty {
                var on: [RetryCondition] = []
                for (i, item) in items.enumerated() {
                    if let c = item.intValue { on.append(.exitCode(c)) } else if let s = item.stringValue, let c = RetryCondition.names[s] { on.append(c) } else {
                        let names = RetryCondition.names.keys.sorted().joined(separator: ", ")
                        diagnostics.report("must be an exit code or one of \(names)", path: "\(path).on[\(i)]", at: item.position)
                    }
                }
                policy.on = on
            } else {
                diagnostics.report("must be a non-empty array, e.g. [\"non_zero\", \"timeout\"] or [75, \"signal\"]", path: "\(path).on", at: n.position)
            }
        }
        r.finish()
        return policy
    }

    private func after(_ node: JSONNode, path: String) -> [Dependency]? {
        guard let items = node.arrayValue else {
            diagnostics.report("must be an array of job ids, e.g. [\"prepare\", \"fetch:any\"]", path: path, at: node.position)
            return nil
        }
        var out: [Dependency] = []
        let conditions = Dependency.Condition.allCases.map(\.rawValue).joined(separator: ", ")
        for (i, item) in items.enumerated() {
            let p = "\(path)[\(i)]"
            if let s = item.stringValue {
                let parts = s.split(separator: ":", maxSplits: 1).map(String.init)
                if parts.count == 2 {
                    guard let c = Dependency.Condition(rawValue: parts[1]) else {
                        diagnostics.report("unknown condition \"\(parts[1])\"; use one of \(conditions)", path: p, at: item.position)
                        continue
                    }
                    out.append(Dependency(job: parts[0], condition: c))
                } else {
                    out.append(Dependency(job: s))
                }
            } else if var r = ObjectReader(item, path: p, diagnostics: diagnostics) {
                let job = r.string("job")
                var condition = Dependency.Condition.ok
                if let c = r.string("condition") {
                    if let v = Dependency.Condition(rawValue: c) { condition = v } else {
                        diagnostics.report("unknown condition \"\(c)\"; use one of \(conditions)", path: "\(p).condition", at: r.node("condition")?.position)
                    }
                }
                r.finish()
                if let job { out.append(Dependency(job: job, condition: condition)) } else {
                    diagnostics.report("needs `job`", path: p, at: item.position)
                }
            }
        }
        return out
    }

    private func outputs(_ node: JSONNode, path: String) -> [String]? {
        guard let items = node.arrayValue else {
            diagnostics.report("must be an array of paths or globs, e.g. [\"out.txt\", \"plots/*.png\"]", path: path, at: node.position)
            return nil
        }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            guard let s = item.stringValue, LocalFile.staysInside(s) else {
                diagnostics.report("must be a relative path or glob inside the working directory (no leading /, no ..)", path: "\(path)[\(i)]", at: item.position)
                continue
            }
            out.append(s)
        }
        return out
    }

    // MARK: Inputs

    private mutating func inputs(_ node: JSONNode, path: String, from: inout [(job: String, pattern: String, path: String)]) -> [InputFile]? {
        guard let items = node.arrayValue else {
            diagnostics.report("must be an array of files or folders, e.g. [\"data/params.txt\", {\"from\": \"chunk-*\", \"path\": \"count.txt\"}]", path: path, at: node.position)
            return nil
        }
        var out: [InputFile] = []
        for (i, item) in items.enumerated() {
            let p = "\(path)[\(i)]"
            if let s = item.stringValue {
                out += local(s, as: nil, path: p, at: item.position)
            } else if var r = ObjectReader(item, path: p, diagnostics: diagnostics) {
                let source = r.string("path")
                let dest = r.string("as")
                let job = r.string("from")
                r.finish()
                if let dest, !LocalFile.staysInside(dest) {
                    diagnostics.report("must be a relative path inside the working directory", path: "\(p).as", at: item.position)
                    continue
                }
                guard let source else {
                    diagnostics.report("needs `path`", path: p, at: item.position)
                    continue
                }
                if let job {
                    guard LocalFile.staysInside(source) else {
                        diagnostics.report("must be a relative path or glob inside the upstream job's results", path: "\(p).path", at: item.position)
                        continue
                    }
                    from.append((job, source, dest ?? ""))
                } else {
                    out += local(source, as: dest, path: p, at: item.position)
                }
            }
        }
        return out
    }

    /// A local file, or every file under a local folder.
    private mutating func local(_ given: String, as dest: String?, path: String, at position: SourcePosition?) -> [InputFile] {
        let expanded = LocalUser.expand(given)
        let absolute = expanded.hasPrefix("/") ? expanded : baseDirectory + "/" + expanded
        let trimmed = given.hasSuffix("/") ? String(given.dropLast()) : given
        let target = dest ?? (LocalFile.staysInside(trimmed) && !given.hasPrefix("~") ? trimmed : (absolute as NSString).lastPathComponent)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDir) else {
            diagnostics.report("no such file or folder: \(absolute)\(given.hasPrefix("/") ? "" : " (relative paths start at the batch file's folder)")", path: path, at: position)
            return []
        }
        if !isDir.boolValue { return file(absolute, dest: target, path: path, at: position).map { [$0] } ?? [] }
        var out: [InputFile] = []
        for name in LocalFolder.files(under: absolute) {
            if let f = file(absolute + "/" + name, dest: target + "/" + name, path: path, at: position) { out.append(f) }
        }
        if out.isEmpty { diagnostics.report("the folder \(absolute) holds no file", path: path, at: position) }
        return out
    }

    private mutating func file(_ absolute: String, dest: String, path: String, at position: SourcePosition?) -> InputFile? {
        if let (sha, mode) = hashes[absolute] { return InputFile(source: absolute, path: dest, sha256: sha, mode: mode) }
        do {
            let sha = try LocalFile.sha256(absolute)
            var st = stat()
            let mode = stat(absolute, &st) == 0 ? Int(st.st_mode & 0o777) : 0o644
            hashes[absolute] = (sha, mode)
            return InputFile(source: absolute, path: dest, sha256: sha, mode: mode)
        } catch {
            diagnostics.report("cannot read input: \(error)", path: path, at: position)
            return nil
        }
    }

    /// `{"from": …}` inputs must name jobs this job depends on (else the files may not exist yet).
    private func checkFromInputs(_ jobs: [BatchJob]) {
        for j in jobs {
            for (i, input) in (j.request.inputs ?? []).enumerated() {
                guard let pattern = input.from else { continue }
                let deps = j.dependencies.map(\.job)
                if !deps.contains(where: { Wildcard.matches(pattern, $0) }) {
                    diagnostics.report("`from: \(pattern)` matches no job in this job's `after` (\(deps.joined(separator: ", "))); add the jobs it reads from to `after`", path: "\(j.path).inputs[\(i)]", at: nil)
                }
            }
        }
    }
}
