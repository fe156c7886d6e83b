import CDroverSys
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The supervisor of one attempt, run by a shim process (`ShimProcess`).
///
/// The shim process is started by the agent in a new session, so it outlives an agent
/// restart. It runs the job, enforces its limits and timeout, and when the job ends for any
/// reason kills every descendant before it writes the result.
struct Shim {
    let dir: StateDirectory
    let id: AttemptID
    /// What the shim process keeps over its attempts (signal pipe, file watch, subreaper).
    let context: ShimContext
    let table = Platform.processes
    /// The last transition this shim wrote: it is the file's only writer while it runs, so
    /// it appends without reading the file again.
    private let written = LastTransition()

    /// Runs the attempt to its end; the exit status is 0 whenever a result was written.
    func run() -> Int32 {
        // The attempt's shim holds an flock on its spec for its whole life: never two shims.
        let lockFD = open(dir.specFile(id), O_RDONLY | O_CLOEXEC)
        guard lockFD >= 0, flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            if lockFD >= 0 { close(lockFD) }
            return 0
        }
        // Released once the attempt has ended (a reused shim goes on to the next one).
        defer { close(lockFD) }
        guard let node = readJSON(dir.specFile(id)), case .success(let spec) = AttemptSpec.parse(node, file: dir.specFile(id)) else {
            AgentLog.write("shim \(id): unreadable spec")
            return finishWithoutJob(.startFailed, error: "the spec file is missing or invalid")
        }
        let portable = context.portable
        let subreaper = context.subreaper
        // The shim sleeps until SIGCHLD (the job or an orphan ended), its `cancel` file
        // appears, or a deadline (timeout, grace, memory check) passes.
        let signals = context.signals
        let watch = context.watch
        watch.watch(dir.attemptDirectory(id), entries: ["cancel"])
        defer { watch.unwatch(dir.attemptDirectory(id)) }
        let cgroup = portable ? nil : JobCgroup.create(name: JobCgroup.name(for: dir, id))
        let shimStart = context.start
        var starting = JSONObject()
        starting.set("shim_pid", Int(getpid()))
        starting.set("shim_start", shimStart)
        guard let n = try? Transitions.append(.starting, to: dir.transitionsFile(id), fields: starting) else {
            return 1
        }
        written.last = (n, .starting)
        if let cancel = cancelRequest() {
            return finishWithoutJob(cancel.state, error: nil, stale: cancel.stale)
        }
        let stdinFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let outFD = open(dir.stdoutFile(id), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        let errFD = open(dir.stderrFile(id), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard stdinFD >= 0, outFD >= 0, errFD >= 0 else {
            return finishWithoutJob(.startFailed, error: SystemError.current("open output files in", path: dir.attemptDirectory(id)).description)
        }
        let cwd: String?
        do { cwd = try WorkingDirectory.prepare(spec, dir: dir) } catch {
            close(stdinFD); close(outFD); close(errFD)
            return finishWithoutJob(.startFailed, error: error.description)
        }
        let argv = spec.commandLine
        let env = environment(for: spec)
        var limits = drover_limits(
            cpu_seconds: spec.cpuSeconds.map { Int64($0) } ?? -1, open_files: spec.openFiles.map { Int64($0) } ?? -1,
            address_space_bytes: -1, core_bytes: spec.coreDumps ? -1 : 0)
        var childErrno: Int32 = 0
        let startedAt = wallTime()
        let pid: pid_t = argv.withCStrings { a in
            env.withCStrings { e in
                a.withUnsafeBufferPointer { ap in
                    e.withUnsafeBufferPointer { ep in
                        drover_spawn_job(argv[0], ap.baseAddress, ep.baseAddress, cwd, stdinFD, outFD, errFD, &limits, Int32(spec.nice), cgroup?.procsFile, &childErrno)
                    }
                }
            }
        }
        close(stdinFD); close(outFD); close(errFD)
        if pid < 0 {
            cgroup?.remove()
            let why = SystemError("exec \(argv[0])", path: cwd.map { "(cwd \($0))" }, errno: childErrno).description
            return finishWithoutJob(.startFailed, error: why)
        }
        var running = JSONObject()
        running.set("pid", Int(pid))
        if let n = try? Transitions.append(.running, to: dir.transitionsFile(id), fields: running, after: written.last) {
            written.last = (n, .running)
        }
        var snapshots = spec.checkpoint.map {
            Snapshotter(globs: $0.paths, workdir: cwd.map { LocalUser.expand($0) } ?? LocalUser.home, folder: dir.checkpointsDirectory(id), job: id.job, attempt: id.attempt)
        }
        let code = supervise(spec: spec, pid: pid, startedAt: startedAt, cgroup: cgroup, tracking: (subreaper, shimStart), watch: watch, signals: signals, snapshots: &snapshots)
        return code
    }

    // MARK: - Supervision

    private var portable: Bool { Platform.processes is PortableProcessTable }

    private func supervise(spec: AttemptSpec, pid: pid_t, startedAt: Double, cgroup: JobCgroup?, tracking: (subreaper: Bool, shimStart: String?), watch: FileWatch, signals: SignalWake?, snapshots: inout Snapshotter?) -> Int32 {
        let every = spec.checkpoint?.every
        var nextSnapshot = every.map { monotonicTime() + $0 }
        let killer = TreeKiller(table: table, cookie: dir.cookie(id), scansCookies: !tracking.subreaper, startedAfter: tracking.shimStart, cgroup: cgroup)
        let deadline = spec.timeout.map { monotonicTime() + $0 }
        var stopReason: AttemptState?
        var stale = false
        var termSentAt: Double?
        var lastMemoryCheck = 0.0
        var status: Int32 = 0
        var usage = rusage()
        var peakRSS: UInt64 = 0
        while true {
            let r = wait4(pid, &status, WNOHANG, &usage)
            if r == pid { break }
            if r < 0 && errno != EINTR { break }
            reapOrphans(except: pid)
            let now = monotonicTime()
            if stopReason == nil {
                if let cancel = cancelRequest() {
                    stopReason = cancel.state
                    stale = cancel.stale
                } else if let deadline, now >= deadline {
                    stopReason = .timedOut
                }
                if stopReason != nil {
                    killer.signalAll(SIGTERM, pgid: pid, ancestor: getpid())
                    termSentAt = now
                }
            }
            if let limit = spec.memoryBytes, now - lastMemoryCheck >= 0.1 {
                lastMemoryCheck = now
                let rss = treeResidentBytes(pgid: pid)
                peakRSS = max(peakRSS, rss)
                if rss > limit && stopReason != .resourceLimit {
                    stopReason = .resourceLimit
                    killer.signalAll(SIGKILL, pgid: pid, ancestor: getpid())
                }
            }
            if let sent = termSentAt, now - sent >= spec.grace {
                killer.signalAll(SIGKILL, pgid: pid, ancestor: getpid())
                termSentAt = nil
            }
            if stopReason == nil, let due = nextSnapshot, let every, now >= due {
                let outcome = snapshot(&snapshots, reason: "interval")
                // A file the job was writing in place: try again soon, not a whole interval later.
                nextSnapshot = now + (outcome.isBusy ? min(1, every) : every)
            }
            var next: Double?
            if stopReason == nil, let deadline { next = deadline }
            if stopReason == nil, let due = nextSnapshot { next = min(next ?? .infinity, due) }
            if let sent = termSentAt { next = min(next ?? .infinity, sent + spec.grace) }
            if spec.memoryBytes != nil { next = min(next ?? .infinity, lastMemoryCheck + 0.1) }
            // Without the signal pipe (it could not be made), SIGCHLD is noticed every 50 ms.
            if signals == nil { next = min(next ?? .infinity, monotonicTime() + 0.05) }
            _ = watch.wait(timeout: next.map { max(0, $0 - monotonicTime()) })
            signals?.drain()
            _ = signals?.take(SIGCHLD)
        }
        let endedAt = wallTime()
        // The job is done: nothing it started may outlive it.
        let leftovers = killer.killAll(pgid: pid, ancestor: getpid())
        cgroup?.remove()
        // Whatever ended it (exit, cancel, timeout), its files are still there: the last snapshot.
        _ = snapshot(&snapshots, reason: "end")
        var reason: AttemptState
        var fields = JSONObject()
        if drover_wifexited(status) != 0 {
            reason = stopReason ?? .exited
            fields.set("exit_code", Int(drover_wexitstatus(status)))
        } else {
            let sig = drover_wtermsig(status)
            fields.set("signal", signalName(sig))
            if let stopReason { reason = stopReason } else if sig == SIGXCPU { reason = .resourceLimit } else { reason = .signaled }
        }
        if reason == .resourceLimit { fields.set("limit", spec.memoryBytes != nil && peakRSS > (spec.memoryBytes ?? .max) ? "memory" : "cpu") }
        let maxRSS = UInt64(max(0, usage.ru_maxrss)) * rssUnit
        fields.set("started_at", startedAt)
        fields.set("ended_at", endedAt)
        fields.set("max_rss_bytes", max(maxRSS, peakRSS))
        fields.set("user_cpu_seconds", seconds(usage.ru_utime))
        fields.set("system_cpu_seconds", seconds(usage.ru_stime))
        fields.set("leftovers_killed", leftovers)
        let finders = portable ? ["ps"] : tracking.subreaper ? ["subreaper"] : ["cookie"]
        fields.set("tracking", ["process-group"] + finders + (cgroup != nil ? ["cgroup"] : []))
        if stale && reason == .cancelled { fields.set("stale", true) }
        return finish(reason, fields: fields)
    }

    /// Takes a snapshot of the checkpoint files (when the spec declares them), logging problems.
    private func snapshot(_ snapshots: inout Snapshotter?, reason: String) -> Snapshotter.Outcome {
        guard snapshots != nil else { return .unchanged }
        let outcome = snapshots!.take(reason: reason)
        switch outcome {
        case .busy(let path): AgentLog.write("shim \(id): checkpoint skipped: \(path) changed while it was copied (write it to a temporary file and rename it); trying again")
        case .failed(let why): AgentLog.write("shim \(id): checkpoint failed: \(why)")
        case .taken, .unchanged: break
        }
        return outcome
    }

    /// Sum of RSS over the job's process group and the shim's other descendants.
    private func treeResidentBytes(pgid: pid_t) -> UInt64 {
        let snapshot = table.snapshot()
        let group = Set(snapshot.filter { $0.pgid == pgid }.map(\.pid))
        let members = group.union(snapshotDescendants(of: group.union([getpid()]), in: snapshot))
        return snapshot.filter { members.contains($0.pid) }.reduce(0) { $0 + $1.residentBytes }
    }

    /// Collects orphans re-parented to us (the subreaper), never the job itself: wait4 must see its status.
    private func reapOrphans(except job: pid_t) {
        while drover_reap_other_child(job) > 0 {}
    }

    // MARK: - Endings

    private func finishWithoutJob(_ reason: AttemptState, error: String?, stale: Bool = false) -> Int32 {
        var f = JSONObject()
        f.set("error", error)
        let now = wallTime()
        f.set("started_at", now)
        f.set("ended_at", now)
        if stale { f.set("stale", true) }
        return finish(reason, fields: f)
    }

    /// Writes `result.json`, then the final transition (in that order: a final state always has a result).
    private func finish(_ reason: AttemptState, fields: JSONObject) -> Int32 {
        do {
            try AttemptEnd.record(reason, fields: fields, dir: dir, id: id, after: written.last)
        } catch {
            AgentLog.write("shim \(id): cannot record the end (\(reason.rawValue)): \(error)")
            return 1
        }
        return 0
    }

    // MARK: - Helpers

    /// What the `cancel` file asks for: `orphaned`, or `cancelled` (`stale` when the
    /// coordinator gave up on the attempt: still `cancelled`, marked "stale":true).
    private func cancelRequest() -> (state: AttemptState, stale: Bool)? {
        guard let bytes = try? LocalFile.read(dir.cancelFile(id)) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: "\n ")
        return text == "orphaned" ? (.orphaned, false) : (.cancelled, text == "stale")
    }

    /// The job's environment: the spec's variables over a small inherited base, plus the cookie.
    private func environment(for spec: AttemptSpec) -> [String] {
        var env: [String: String] = [:]
        for entry in currentEnvironment() {
            guard let eq = entry.firstIndex(of: "=") else { continue }
            let key = String(entry[..<eq])
            if ["HOME", "USER", "LOGNAME", "PATH", "LANG", "LC_ALL", "TZ", "SHELL", "TMPDIR"].contains(key) {
                env[key] = String(entry[entry.index(after: eq)...])
            }
        }
        if env["PATH"] == nil { env["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        for (k, v) in spec.env { env[k] = v }
        if let gpus = spec.gpus { for (k, v) in gpus.environment { env[k] = v } }
        env["DROVER_JOB"] = id.job
        env["DROVER_ATTEMPT"] = String(id.attempt)
        let cookie = dir.cookie(id)
        env["DROVER_COOKIE"] = String(cookie.dropFirst("DROVER_COOKIE=".count))
        return env.keys.sorted().map { "\($0)=\(env[$0]!)" }
    }

    private func seconds(_ t: timeval) -> Double {
        Double(t.tv_sec) + Double(t.tv_usec) / 1e6
    }
}

/// The last transition a shim wrote (its number and state).
private final class LastTransition {
    var last: (n: Int, state: AttemptState)?
}

#if os(Linux)
/// ru_maxrss is in kilobytes on Linux, bytes on macOS.
private let rssUnit: UInt64 = 1024
#else
private let rssUnit: UInt64 = 1
#endif

/// "TERM", "KILL", … for a signal number.
func signalName(_ sig: Int32) -> String {
    let names: [Int32: String] = [
        SIGHUP: "HUP", SIGINT: "INT", SIGQUIT: "QUIT", SIGILL: "ILL", SIGTRAP: "TRAP", SIGABRT: "ABRT",
        SIGBUS: "BUS", SIGFPE: "FPE", SIGKILL: "KILL", SIGUSR1: "USR1", SIGSEGV: "SEGV", SIGUSR2: "USR2",
        SIGPIPE: "PIPE", SIGALRM: "ALRM", SIGTERM: "TERM", SIGCHLD: "CHLD", SIGCONT: "CONT", SIGSTOP: "STOP",
        SIGTSTP: "TSTP", SIGTTIN: "TTIN", SIGTTOU: "TTOU", SIGURG: "URG", SIGXCPU: "XCPU", SIGXFSZ: "XFSZ",
        SIGVTALRM: "VTALRM", SIGPROF: "PROF", SIGWINCH: "WINCH", SIGIO: "IO", SIGSYS: "SYS",
    ]
    return names[sig] ?? String(sig)
}

/// The signal number for a name like "TERM", "SIGTERM" or "15".
func signalNumber(_ name: String) -> Int32? {
    if let n = Int32(name), n > 0, n < 65 { return n }
    let bare = name.hasPrefix("SIG") ? String(name.dropFirst(3)) : name
    for n in Int32(1)..<Int32(32) where signalName(n) == bare.uppercased() { return n }
    return nil
}
