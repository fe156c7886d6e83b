import CDroverSys
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The inbox: commands in, attempts accepted, made durable together, shims started.
extension Supervisor {
    /// Handles every command file in the inbox, in name order (all that are there: several
    /// that arrive together are one batch, made durable by one `syncfs` in `commit`).
    ///
    /// The new attempts' files are written without fsync; `commit()` then makes the whole
    /// batch durable before the inbox files are removed and the shims start: a crash at any
    /// point leaves either the command in the inbox or the accepted attempt on disk.
    func processInbox() {
        inboxRetryAt = nil
        let names = listDirectory(dir.inbox).filter { !$0.hasPrefix(".") && $0.hasSuffix(".json") && !unmovable.contains($0) }.sorted()
        guard !names.isEmpty else { return }
        var handled: [String] = []
        for name in names {
            let path = dir.inbox + "/" + name
            // Only this user's own regular files are commands: a file another user owns or may
            // write, or a symbolic link, is moved aside unread (never followed).
            let bytes: [UInt8]
            do throws(PrivatePath.Problem) {
                bytes = try PrivatePath.readOwnFile(path)
            } catch {
                if case .system = error {
                    // Unreadable for now (e.g. no descriptor left): no event will come, so try again.
                    inboxRetryAt = monotonicTime() + 1
                    continue
                }
                reject(name, reason: "not executed: \(error)")
                continue
            }
            var start: AttemptID?
            do throws(AgentError) {
                let node: JSONNode
                do { node = try JSONParser.parse(bytes) } catch { throw AgentError.invalid("malformed JSON at line \(error.position.line), column \(error.position.column): \(error.message)") }
                try handle(node, file: name, refusing: &start)
                handled.append(path)
            } catch {
                // A refusal of the start itself ends that attempt; a system error (a full disk)
                // does not: the coordinator sends the start again when it reconnects.
                if case .invalid = error {
                    reject(name, reason: error.description, start: start)
                } else {
                    reject(name, reason: error.description)
                }
            }
        }
        handledInbox += handled
    }

    /// Makes this tick's work durable with one `syncfs` (new attempts and new events
    /// together), then removes the handled inbox files and starts the new attempts' shims.
    func commit() {
        guard !pendingEvents.isEmpty || !handledInbox.isEmpty else { return }
        flushEvents(durable: false)
        syncFilesystem(dir.root)
        for path in handledInbox { unlink(path) }
        handledInbox.removeAll()
        for id in toStart { startShim(id) }
        toStart.removeAll()
    }

    /// Acts on one inbox command, read as an `AgentCommand` of the wire protocol.
    /// A start it refuses (other than a resent one) is named in `refusing`.
    private func handle(_ node: JSONNode, file: String, refusing: inout AttemptID?) throws(AgentError) {
        let command: AgentCommand
        switch AgentCommand.parse(node, file: file) {
        case .failure(let e): throw .invalid(e.description)
        case .success(let c): command = c
        }
        switch command {
        case .start(let spec):
            if LocalFile.exists(dir.transitionsFile(spec.id)) { throw .invalid("attempt \(spec.id) already exists; attempts are never reused") }
            refusing = spec.id
            try accept(spec)
        case .cancel(let job, let attempt, let reason):
            // `stale`: the coordinator gave up on the attempt; it ends `cancelled` with "stale":true.
            for id in try targets(job, attempt) { requestCancel(id, reason: reason.rawValue) }
        case .signal(let job, let attempt, let name):
            guard let sig = signalNumber(name) else { throw .invalid("unknown signal name \"\(name)\"") }
            for id in try targets(job, attempt) {
                if let pgid = AttemptProcesses(transitionsFile: dir.transitionsFile(id)).jobPID, pgid > 1 { kill(-pgid, sig) }
            }
        case .lease:
            throw .invalid("a lease is written by `drover-agent link`, not placed in the inbox")
        case .facts:
            throw .invalid("facts are collected by `drover-agent link` (or `drover-agent facts`), not through the inbox")
        }
    }

    /// The live attempts a cancel or signal names (all of the job's when `attempt` is nil).
    private func targets(_ job: String, _ attempt: Int?) throws(AgentError) -> [AttemptID] {
        let found = live.keys.filter { $0.job == job && (attempt == nil || $0.attempt == attempt) }
        if found.isEmpty { throw .invalid("no live attempt of \(job)\(attempt.map { "/\($0)" } ?? "")") }
        return found
    }

    /// Records a new attempt (spec, then `accepted`); its shim starts once the batch is durable.
    private func accept(_ spec: AttemptSpec) throws(AgentError) {
        var spec = spec
        let id = spec.id
        if var grant = spec.gpus {
            grant.assigned = try assignGPUs(grant)
            spec.gpus = grant
        }
        let attemptDir = dir.attemptDirectory(id)
        try StateDirectory.makeDirectory(attemptDir)
        // Written in place: until the `accepted` line exists the attempt does not, and a
        // command whose spec write was cut short is still in the inbox and is written again.
        do { try writeFile(Array((spec.json + "\n").utf8), to: dir.specFile(id)) } catch { throw .system(error) }
        try Transitions.append(.accepted, to: dir.transitionsFile(id))
        live[id] = Live(state: .accepted, coordinator: spec.coordinator, keepRunning: spec.keepRunning, lease: spec.lease, gpus: spec.gpus?.assigned ?? [])
        if spec.checkpoint != nil { try StateDirectory.makeDirectory(dir.checkpointsDirectory(id)) }
        // Watched before the shim exists, so none of its lines can come unnoticed.
        follow(id)
        pollTransitions(only: id)
        toStart.append(id)
    }

    /// Picks `grant.count` devices of the host's (the coordinator's list, else the detected ones)
    /// that no live attempt holds, lowest first; refuses the attempt when too few are free.
    private func assignGPUs(_ grant: GPUGrant) throws(AgentError) -> [String] {
        let offered = grant.devices ?? GPUDetection.devices()
        let held = Set(live.values.flatMap(\.gpus))
        let free = offered.filter { !held.contains($0) }
        guard free.count >= grant.count else {
            throw .invalid("needs \(grant.count) GPU(s) but only \(free.count) of this host's \(offered.count) (\(offered.joined(separator: ",")))" +
                           " are free; held: \(held.sorted().joined(separator: ",")))")
        }
        return Array(free.prefix(grant.count))
    }

    private func reject(_ name: String, reason: String, start: AttemptID? = nil) {
        let from = dir.inbox + "/" + name
        let to = dir.rejected + "/" + name
        if rename(from, to) != 0 {
            // Never handle the same file again: remove it (this user owns the inbox folder).
            let e = SystemError.current("move to \(to)", path: from)
            if unlink(from) != 0 && rmdir(from) != 0 {
                unmovable.insert(name)
                AgentLog.write("cannot move aside or remove inbox/\(name) (\(e)); ignoring it from now on")
            }
        }
        try? AtomicFile.write(Array((reason + "\n").utf8), to: to + ".reason")
        emit(.rejected(file: name, reason: reason, start: start))
        AgentLog.write("rejected inbox/\(name): \(reason)")
    }

    func requestCancel(_ id: AttemptID, reason: String) {
        try? AtomicFile.write(Array((reason + "\n").utf8), to: dir.cancelFile(id))
    }
}

/// Flushes every file system buffer of the file system holding `path` (one `syncfs`);
/// nothing with `DROVER_NOSYNC` set (tests that measure something else).
func syncFilesystem(_ path: String) {
    if LocalUser.environment("DROVER_NOSYNC") != nil { return }
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = drover_syncfs(fd)
    close(fd)
}

/// Names in a directory (not `.` or `..`); empty when it cannot be read.
func listDirectory(_ path: String) -> [String] {
    guard let d = opendir(path) else { return [] }
    defer { closedir(d) }
    var out: [String] = []
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { out.append(name) }
    }
    return out
}
