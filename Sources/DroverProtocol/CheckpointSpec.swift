import DroverCore

/// What a job saves of itself and how often (docs/checkpoints.md): globs of files in its
/// working directory, snapshotted by its shim while it runs and at its end.
public struct CheckpointSpec: Sendable, Equatable, Codable {
    /// Globs relative to the working directory, matched per path component (`state/*.sobj`).
    public var paths: [String]
    /// Seconds between snapshots while the job runs (taken only when a matching file changed);
    /// nil: only at the job's end.
    public var every: Double?
    /// An exit with this code means "I saved, restart me" (HTCondor's convention).
    public var exitCode: Int?

    public init(paths: [String], every: Double? = nil, exitCode: Int? = nil) {
        self.paths = paths
        self.every = every
        self.exitCode = exitCode
    }

    /// A problem with a glob (absolute, `..`, empty), or nil.
    public static func problem(glob: String) -> String? {
        if glob.isEmpty || glob.hasPrefix("/") || glob.split(separator: "/").contains("..") {
            return "\"\(glob)\" must be a relative path or glob inside the working directory (no leading /, no ..)"
        }
        return nil
    }

    public var jsonObject: JSONObject {
        var o = JSONObject()
        o.set("paths", paths)
        o.set("every", every)
        o.set("exit_code", exitCode)
        return o
    }

    /// Reads `checkpoint` of a spec or batch job (`every` in seconds or as "5m"); problems go to `d`.
    public static func parse(_ node: JSONNode, path: String, diagnostics d: ConfigDiagnostics, duration: (String) -> Double? = { Double($0) }) -> CheckpointSpec? {
        guard var r = ObjectReader(node, path: path, diagnostics: d) else { return nil }
        var spec = CheckpointSpec(paths: [])
        if let n = r.node("paths") {
            if let globs = n.stringArray, !globs.isEmpty {
                for g in globs { if let p = problem(glob: g) { d.report(p, path: path + ".paths", at: n.position) } }
                spec.paths = globs
            } else {
                d.report("must be a non-empty array of globs, e.g. [\"state/*.sobj\", \"progress.json\"]", path: path + ".paths", at: n.position)
            }
        } else {
            d.report("needs `paths`: the files to save, e.g. [\"progress.json\"]", path: path, at: node.position)
        }
        if let n = r.node("every") {
            let seconds = n.doubleValue ?? n.stringValue.flatMap(duration)
            if let seconds, seconds > 0 { spec.every = seconds } else {
                d.report("must be a positive duration: seconds, or \"30s\", \"5m\", \"1h\"", path: path + ".every", at: n.position)
            }
        }
        if let n = r.node("exit_code") {
            if let c = n.intValue, (1...255).contains(c) { spec.exitCode = c } else {
                d.report("must be an exit code 1–255 (e.g. 85)", path: path + ".exit_code", at: n.position)
            }
        }
        r.finish()
        return spec
    }
}

/// One file of a snapshot, as its manifest and the `checkpoint` event list it.
public struct CheckpointFile: Sendable, Equatable, Codable {
    /// Relative to the working directory.
    public var path: String
    public var size: Int
    public var sha256: String

    public init(path: String, size: Int, sha256: String) {
        self.path = path
        self.size = size
        self.sha256 = sha256
    }
}

/// A snapshot an attempt's shim took: `attempts/JOB/N/checkpoints/INDEX`.
public struct CheckpointEvent: Sendable, Equatable {
    public var job: String
    public var attempt: Int
    /// 1, 2, … within the attempt.
    public var index: Int
    /// When the files were copied (Unix seconds).
    public var takenAt: Double
    /// `interval` (while it runs) or `end` (after the job ended, for any reason).
    public var reason: String
    public var files: [CheckpointFile]

    public init(job: String, attempt: Int, index: Int, takenAt: Double, reason: String, files: [CheckpointFile]) {
        self.job = job
        self.attempt = attempt
        self.index = index
        self.takenAt = takenAt
        self.reason = reason
        self.files = files
    }

    public var bytes: Int { files.reduce(0) { $0 + $1.size } }

    /// The manifest's (and the event's) fields, without `type`.
    public var jsonObject: JSONObject {
        var o = JSONObject()
        o.set("job", job)
        o.set("attempt", attempt)
        o.set("index", index)
        o.set("taken_at", takenAt)
        o.set("reason", reason)
        o.set("files", objects: files.map { f in
            var e = JSONObject()
            e.set("path", f.path)
            e.set("size", f.size)
            e.set("sha256", f.sha256)
            return e
        })
        return o
    }

    /// Reads a manifest or event; nil when a field is missing or a file entry is unsafe.
    public init?(_ node: JSONNode) {
        guard let job = node["job"]?.stringValue, let attempt = node["attempt"]?.intValue, let index = node["index"]?.intValue,
              let takenAt = node["taken_at"]?.doubleValue, let items = node["files"]?.arrayValue else { return nil }
        var files: [CheckpointFile] = []
        for item in items {
            guard let p = item["path"]?.stringValue, LocalFile.staysInside(p), let size = item["size"]?.intValue,
                  let sha = item["sha256"]?.stringValue, SHA256.isHexDigest(sha) else { return nil }
            files.append(CheckpointFile(path: p, size: size, sha256: sha))
        }
        self.init(job: job, attempt: attempt, index: index, takenAt: takenAt, reason: node["reason"]?.stringValue ?? "?", files: files)
    }
}
