import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// `--line-buffer`: each running job's lines, printed as they come (whole lines, never a
/// piece of one between another job's), prefixed with `--tag`/`--tagstring`. It follows the
/// attempt as `drover logs --follow` does (`agent output --follow` over one SSH session per
/// host), started when a reading of the journal shows the attempt running: nothing polls.
///
/// A job whose attempt is lost (its host died) runs again elsewhere; the lines the lost
/// attempt printed are not printed again: the new attempt's first lines, as many as were
/// printed on each stream, are passed over (a job that writes the same lines each run prints
/// each once). A job that ended before a reading saw it running, or whose stream could not be
/// opened and printed nothing, is printed from the results folder when it ends, as `--group` does.
final class MapLineStream {
    private let journal: Journal
    private let inventory: Inventory
    private let printer: LinePrinter
    private let pool = SessionPool()
    private let verbose: Bool
    /// Job number → the attempt streamed and how to stop it.
    private var streams: [String: Streaming] = [:]

    private struct Streaming {
        var job: Int
        var attempt: Int
        var task: Task<Void, Never>
        var handle: StreamHandle
    }

    init(journal: Journal, inventory: Inventory, tags: [String]?, verbose: Bool) {
        self.journal = journal
        self.inventory = inventory
        self.verbose = verbose
        printer = LinePrinter(tags: tags)
    }

    /// Whether job `id`'s output is printed here (MapOutput then leaves it out).
    func claims(_ id: String) -> Bool { streams[id] != nil && !printer.fellBack(id) }

    /// Jobs whose stream failed before it printed anything: MapOutput prints them at the end.
    var fellBack: [String] { streams.keys.filter(printer.fellBack).sorted() }

    /// After each reading of the journal: starts following the attempts now running, and stops
    /// following the attempts that were lost.
    func update(_ jobs: [JobRecord]) throws {
        for j in jobs {
            guard let id = j.batchJob, !j.state.isFinal, j.state == .running else { continue }
            if let s = streams[id], s.attempt == j.attempt { continue }
            guard let a = try journal.attempt(j.id, j.attempt), a.agentState != nil, !a.stale, a.state != "lost" else { continue }
            // After a lost attempt, the lines it printed are passed over; after a failed one
            // (`--retries`) the new attempt prints all of its own, as parallel's retries do.
            var afterLoss = false
            if let old = streams[id] {
                old.handle.cancel()
                afterLoss = try journal.attempt(old.job, old.attempt).map { $0.stale || $0.state == "lost" } ?? false
            }
            try start(id, job: j, attempt: a, afterLoss: afterLoss)
        }
        for (id, s) in streams where !s.handle.isCancelled {
            guard let a = try journal.attempt(s.job, s.attempt), a.stale || a.state == "lost" else { continue }
            s.handle.cancel()
            Terminal.note("job \(id): attempt \(a.attempt) on \(a.host) was lost (\(a.reason ?? "host down")); it runs again elsewhere, its lines printed so far are not printed again")
        }
    }

    private func start(_ id: String, job: JobRecord, attempt: AttemptRecord, afterLoss: Bool) throws {
        guard let spec = inventory.host(named: attempt.host) else { return }
        let command = try JobFollower.outputCommand(attempt, journal: journal, inventory: inventory, follow: true)
        if verbose, streams[id] == nil { printer.raw(job.request.commandLine + "\n") }
        let n = attempt.attempt
        printer.begin(id, attempt: n, afterLoss: afterLoss)
        let handle = StreamHandle()
        let printer = self.printer, pool = self.pool
        let task = Task {
            // A channel on a connection shared with the host's other streams (at most 8 per
            // connection: sshd's MaxSessions is 10), given back when the job's stream ends.
            guard let lease = try? await pool.acquire(spec) else { return printer.end(id, attempt: n, completed: false, lost: handle.isCancelled) }
            var broken = false
            do {
                let stream = try lease.session.stream(command, stdin: nil)
                guard handle.set(stream) else {
                    await pool.release(lease, broken: false)
                    return printer.end(id, attempt: n, completed: false, lost: true)
                }
                var exited = false
                for try await event in stream {
                    switch event {
                    case .stdout(let b): printer.feed(id, attempt: n, fd: 1, b)
                    case .stderr(let b): printer.feed(id, attempt: n, fd: 2, b)
                    case .exit: exited = true
                    }
                }
                printer.end(id, attempt: n, completed: exited, lost: handle.isCancelled)
            } catch {
                broken = !handle.isCancelled
                printer.end(id, attempt: n, completed: false, lost: handle.isCancelled)
            }
            await pool.release(lease, broken: broken)
        }
        streams[id] = Streaming(job: job.id, attempt: attempt.attempt, task: task, handle: handle)
    }

    /// Waits for every stream to end (the jobs are over); the last one's release closes each connection.
    func finish() async {
        for s in streams.values { await s.task.value }
    }

    /// Stops every stream (Ctrl-C) and closes the sessions.
    func cancel() async {
        for s in streams.values { s.handle.cancel() }
        await finish()
    }
}

/// A stream that may be cancelled before it is open.
private final class StreamHandle: Sendable {
    private let state = Locked<(stream: HostStream?, cancelled: Bool)>((nil, false))

    /// Keeps the stream; false (and closes it) when cancelled already.
    func set(_ stream: HostStream) -> Bool {
        let cancelled = state.withLock { s -> Bool in
            s.stream = stream
            return s.cancelled
        }
        if cancelled { stream.cancel() }
        return !cancelled
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    func cancel() {
        let stream = state.withLock { s -> HostStream? in
            s.cancelled = true
            return s.stream
        }
        stream?.cancel()
    }
}

/// Writes whole lines of every job, each prefixed with its tag; counts them per job and
/// stream, so that a re-run after a lost attempt passes over those printed already.
final class LinePrinter: Sendable {
    private struct Job {
        /// The attempt printing now; bytes of another (a lost one still draining) are dropped.
        var attempt = 0
        var partial: [[UInt8]] = [[], [], []]
        var printed = [0, 0, 0]
        var skip = [0, 0, 0]
        var wroteAny = false
        var failed = false
    }

    private let tags: [String]?
    private let jobs = Locked<[String: Job]>([:])

    init(tags: [String]?) { self.tags = tags }

    /// A new attempt of job `id`; after a lost one, its first lines, as many as printed before, are passed over.
    func begin(_ id: String, attempt: Int, afterLoss: Bool) {
        jobs.withLock { all in
            var j = all[id] ?? Job()
            j.attempt = attempt
            j.partial = [[], [], []]
            j.skip = afterLoss ? j.printed : [0, 0, 0]
            if !afterLoss { j.printed = [0, 0, 0] }
            j.failed = false
            all[id] = j
        }
    }

    /// Bytes of job `id`'s stdout (fd 1) or stderr (fd 2): prints the lines they complete.
    func feed(_ id: String, attempt: Int, fd: Int32, _ bytes: [UInt8]) {
        let prefix = tag(id)
        jobs.withLock { all in
            guard var j = all[id], j.attempt == attempt else { return }
            var out: [UInt8] = []
            for b in bytes {
                j.partial[Int(fd)].append(b)
                guard b == UInt8(ascii: "\n") else { continue }
                if j.skip[Int(fd)] > 0 {
                    j.skip[Int(fd)] -= 1
                } else {
                    out += prefix + j.partial[Int(fd)]
                    j.printed[Int(fd)] += 1
                }
                j.partial[Int(fd)].removeAll(keepingCapacity: true)
            }
            if !out.isEmpty {
                j.wroteAny = true
                MapOutput.writeAll(fd, out[...])
            }
            all[id] = j
        }
    }

    /// The attempt's stream ended: its last line without a newline is printed unless the
    /// attempt was lost; a stream that failed having printed nothing falls back to the results folder.
    func end(_ id: String, attempt: Int, completed: Bool, lost: Bool) {
        let prefix = tag(id)
        jobs.withLock { all in
            guard var j = all[id], j.attempt == attempt else { return }
            if !lost {
                for fd in [1, 2] where !j.partial[fd].isEmpty && j.skip[fd] == 0 {
                    MapOutput.writeAll(Int32(fd), (prefix + j.partial[fd])[...])
                    j.wroteAny = true
                }
            }
            j.partial = [[], [], []]
            if !completed && !lost && !j.wroteAny { j.failed = true }
            all[id] = j
        }
    }

    /// Whether job `id`'s stream failed before it printed anything.
    func fellBack(_ id: String) -> Bool { jobs.withLock { $0[id]?.failed ?? false } }

    /// A line of its own (`-v`'s command line) on stdout.
    func raw(_ text: String) {
        jobs.withLock { _ in MapOutput.writeAll(1, Array(text.utf8)[...]) }
    }

    private func tag(_ id: String) -> [UInt8] {
        guard let tags, let n = Int(id), tags.indices.contains(n - 1) else { return [] }
        return Array((tags[n - 1] + "\t").utf8)
    }
}
