import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which attempt folders and event-log segments may go (docs/agent.md, "Retention").
///
/// An attempt's folder goes only when its coordinator has collected it — the coordinator's
/// lease (`leases/<id>`) carries `collected`, the highest event `seq` it has applied and
/// whose results it has fetched, and the attempt's final transition is at or below it — and
/// either the policy's `keep` has passed since it ended, or the root is over its cap (then the
/// oldest first). A closed segment goes, oldest first, only when every coordinator's mark is
/// past it, no attempt it mentions still has a folder, and it is older than `keep` or the root
/// is over its cap. Nothing live and nothing uncollected is ever removed.
struct GarbageCollector {
    let dir: StateDirectory
    let policy: RetentionPolicy

    struct Removal {
        var path: String
        var bytes: Int64
        var why: String
        var attempt: AttemptID?
    }

    struct Plan {
        var removals: [Removal] = []
        var sizeBefore: Int64 = 0
        var cap: Int64 = 0
        /// Ended attempts kept because no coordinator has collected them yet.
        var uncollected = 0
        var sizeAfter: Int64 { sizeBefore - removals.reduce(0) { $0 + $1.bytes } }
    }

    /// The policy in the root's `retention.json` (written by `link`), else the defaults.
    static func policy(_ dir: StateDirectory) -> RetentionPolicy {
        readJSON(dir.retentionFile).map(RetentionPolicy.parse) ?? RetentionPolicy()
    }

    /// Each coordinator's collected mark, from its lease file; the legacy `lease` file's under "".
    static func collectedMarks(_ dir: StateDirectory) -> [String: Int] {
        var marks: [String: Int] = [:]
        for name in listDirectory(dir.leases) where !name.hasPrefix(".") {
            if let node = readJSON(dir.leases + "/" + name), let c = node["coordinator"]?.stringValue, let m = node["collected"]?.intValue { marks[c] = m }
        }
        if let node = readJSON(dir.leaseFile), let m = node["collected"]?.intValue { marks[""] = m }
        return marks
    }

    /// What would go now, given the final transitions' sequence numbers.
    func plan(finalSeq: [AttemptID: Int], now: Double = wallTime()) -> Plan {
        var plan = Plan()
        plan.sizeBefore = DiskUsage.of(dir.root)
        plan.cap = policy.cap(filesystemBytes: DiskUsage.filesystemSize(dir.root))
        let marks = Self.collectedMarks(dir)
        var collected: [(id: AttemptID, ended: Double, by: String)] = []
        var present = Set<AttemptID>()
        for job in listDirectory(dir.attempts) {
            for n in listDirectory(dir.attempts + "/" + job) {
                guard let a = Int(n), let id = AttemptID("\(job)/\(a)") else { continue }
                present.insert(id)
                let last = Transitions.read(dir.transitionsFile(id)).last
                guard let state = last?["state"]?.stringValue.flatMap(AttemptState.init(rawValue:)), state.isFinal else { continue }
                let coordinator = readJSON(dir.specFile(id))?["coordinator"]?.stringValue ?? ""
                guard let seq = finalSeq[id], let mark = marks[coordinator], seq <= mark else {
                    plan.uncollected += 1
                    continue
                }
                collected.append((id, last?["time"]?.doubleValue ?? 0, coordinator.isEmpty ? "the coordinator" : coordinator))
            }
        }
        collected.sort { $0.ended < $1.ended }
        var size = plan.sizeBefore
        for c in collected {
            let age = now - c.ended
            let why: String
            if age >= policy.keep {
                why = "collected by \(c.by), ended \(Self.age(age)) ago (keep \(Self.age(policy.keep)))"
            } else if size > plan.cap {
                why = "collected by \(c.by); the root is over its cap (\(Self.bytes(size)) > \(Self.bytes(plan.cap))), oldest first"
            } else { continue }
            let path = dir.attemptDirectory(c.id)
            let bytes = DiskUsage.of(path)
            plan.removals.append(Removal(path: path, bytes: bytes, why: why, attempt: c.id))
            present.remove(c.id)
            size -= bytes
        }
        planSegments(&plan, marks: marks, present: present, now: now)
        return plan
    }

    private func planSegments(_ plan: inout Plan, marks: [String: Int], present: Set<AttemptID>, now: Double) {
        guard let lowest = marks.values.min() else { return }
        let segments = EventSegments.closed(dir)
        for (i, segment) in segments.enumerated() {
            let lastSeq = i + 1 < segments.count ? segments[i + 1].firstSeq - 1 : EventLog.lastSeq(path: segment.path) ?? .max
            guard lastSeq <= lowest, let st = try? FileStatus.of(segment.path) else { return }
            let age = now - st.modified
            // Over the cap, applied segments whose attempts are gone are pure overhead: they go too.
            guard age >= policy.keep || plan.sizeBefore > plan.cap else { return }
            // An attempt whose transitions are only here would be logged again by a restarted agent.
            if Self.attempts(in: segment.path).contains(where: present.contains) { return }
            let why = age >= policy.keep ? "every coordinator applied it (up to seq \(lastSeq)), written \(Self.age(age)) ago"
                                         : "every coordinator applied it (up to seq \(lastSeq)); the root is over its cap"
            let bytes = DiskUsage.of(segment.path)
            plan.removals.append(Removal(path: segment.path, bytes: bytes, why: why, attempt: nil))
        }
    }

    /// The attempts a segment's transitions mention.
    static func attempts(in path: String) -> Set<AttemptID> {
        guard let bytes = try? LocalFile.read(path) else { return [] }
        var out = Set<AttemptID>()
        for line in bytes.split(separator: 0x0A) {
            guard let node = try? JSONParser.parse(Array(line)), let job = node["job"]?.stringValue, let a = node["attempt"]?.intValue else { continue }
            out.insert(AttemptID(job: job, attempt: a))
        }
        return out
    }

    /// Removes what the plan says: an attempt's `transitions` first, so an agent starting
    /// meanwhile never takes a half-removed folder for an attempt to recover.
    func execute(_ plan: Plan) -> [Removal] {
        var done: [Removal] = []
        for r in plan.removals {
            if let id = r.attempt {
                unlink(dir.transitionsFile(id))
                DiskUsage.removeTree(r.path)
                rmdir(dir.attempts + "/" + id.job)  // only when it is empty
            } else {
                unlink(r.path)
            }
            if !LocalFile.exists(r.path) { done.append(r) }
        }
        return done
    }

    static func age(_ seconds: Double) -> String {
        if seconds >= 86_400 { return JSONText.number((seconds / 8640).rounded() / 10) + " d" }
        if seconds >= 3600 { return JSONText.number((seconds / 360).rounded() / 10) + " h" }
        if seconds >= 60 { return JSONText.number((seconds / 6).rounded() / 10) + " min" }
        return JSONText.number(seconds.rounded()) + " s"
    }

    static func bytes(_ n: Int64) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) bytes" : JSONText.number((v * 10).rounded() / 10) + " " + units[u]
    }
}

/// Disk space as the file system counts it (allocated blocks), and removing a tree.
enum DiskUsage {
    /// Bytes allocated to `path` and everything under it (symbolic links not followed).
    static func of(_ path: String) -> Int64 {
        var st = stat()
        guard lstat(path, &st) == 0 else { return 0 }
        var total = Int64(st.st_blocks) * 512
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in listDirectory(path) { total += of(path + "/" + name) }
        }
        return total
    }

    /// The size of the file system that holds `path`, in bytes.
    static func filesystemSize(_ path: String) -> Int64? {
        var vfs = statvfs()
        guard statvfs(path, &vfs) == 0 else { return nil }
        return Int64(vfs.f_blocks) * Int64(vfs.f_frsize)
    }

    /// Removes `path` and everything under it; folders a job made read-only are made writable first.
    static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            unlink(path)
            return
        }
        if (st.st_mode & 0o700) != 0o700 { chmod(path, (st.st_mode & 0o7777) | 0o700) }
        for name in listDirectory(path) { removeTree(path + "/" + name) }
        rmdir(path)
    }
}
