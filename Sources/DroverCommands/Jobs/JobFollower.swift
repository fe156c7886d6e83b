import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import DroverSSH
import Foundation

/// Follows jobs through the journal, and their output on the hosts where they run. It reads
/// the journal again only when someone committed to it (`JournalWatch`), not on a timer.
final class JobFollower {
    let journal: Journal
    let inventory: Inventory
    /// Wakes the follower on each commit; `poke()` it to make it look again now (Ctrl-C).
    let watch: JournalWatch
    private var sessions: [String: any HostSession] = [:]

    init(journal: Journal, inventory: Inventory) throws {
        self.journal = journal
        self.inventory = inventory
        // Before the first read, so no commit after it goes unnoticed.
        watch = try JournalWatch(journal)
    }

    deinit { watch.stop() }

    /// Closes the SSH sessions it opened.
    func close() async {
        for s in sessions.values { await s.shutdown() }
        sessions.removeAll()
    }

    /// Waits until every job is final (or `timeout` passes); returns their last records.
    func waitFinal(_ ids: [Int], timeout: Double? = nil) async throws -> [JobRecord] {
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        return try await watch.reread(until: deadline, { try journal.jobs(ids) }, done: { $0.allSatisfy(\.state.isFinal) })
    }

    private func session(for host: String) async throws -> any HostSession {
        if let s = sessions[host] { return s }
        guard let spec = inventory.host(named: host) else {
            Terminal.error("host \(host) of this job is not in \(inventory.source) (pass the coordinator's inventory with --inventory)")
            throw ExitCode(1)
        }
        let s = try await spec.openSession()
        sessions[host] = s
        return s
    }

    /// The shell line that prints an attempt's output on its host.
    private func outputCommand(_ attempt: AttemptRecord, follow: Bool, stdout: Bool, stderr: Bool) throws -> String {
        guard let spec = inventory.host(named: attempt.host) else { throw ExitCode(1) }
        let build = try journal.hosts().first { $0.name == attempt.host }?.agentBuild ?? ""
        let q = RemotePath.shell
        let agent = Deployer.agentPath(root: spec.root, build: build)
        var line = "\(q(agent)) output --root \(q(spec.root)) \(try journal.coordinatorID())-\(attempt.job)/\(attempt.attempt)"
        if follow { line += " --follow" }
        if !stdout { line += " --stderr-only" }
        if !stderr { line += " --stdout-only" }
        return line
    }

    /// Copies an attempt's output here (stdout to stdout, stderr to stderr); with `follow`,
    /// until the attempt ends or `stop` says to give up on it.
    func copyOutput(_ attempt: AttemptRecord, follow: Bool, stdout: Bool = true, stderr: Bool = true, stop: (() throws -> Bool)? = nil) async throws {
        let session = try await session(for: attempt.host)
        let stream = try session.stream(try outputCommand(attempt, follow: follow, stdout: stdout, stderr: stderr), stdin: nil)
        let done = Locked<Result<ExitStatus?, any Error>?>(nil)
        let watch = self.watch
        let pump = Task {
            defer { watch.poke() }
            do {
                var status: ExitStatus?
                for try await event in stream {
                    switch event {
                    case .stdout(let b): FileHandle.standardOutput.write(Data(b))
                    case .stderr(let b): FileHandle.standardError.write(Data(b))
                    case .exit(let s): status = s
                    }
                }
                done.withLock { $0 = .success(status) }
            } catch {
                done.withLock { $0 = .failure(error) }
            }
        }
        // `stop` looks at the journal after each commit; the pump pokes the watch when the
        // stream ends.
        while done.withLock({ $0 }) == nil {
            if let stop, try stop() {
                stream.cancel()
                break
            }
            let wake = await watch.wait(timeout: nil)
            if wake == .cancelled || wake == .stopped {
                stream.cancel()
                break
            }
        }
        await pump.value
        if case .failure(let e) = done.withLock({ $0 }), !(try stop?() ?? false) {
            Terminal.error("output of job \(attempt.job) on \(attempt.host): \(e)")
        }
    }

    /// Streams a job's output live, attempt after attempt, until the job is final; throws
    /// what `interrupt` returns as soon as it returns an error (and the watch is poked:
    /// `InterruptWatch.wakes`).
    func follow(_ id: Int, interrupt: @escaping () -> (any Error)? = { nil }) async throws -> JobRecord {
        try await followStreams(id, interrupt: interrupt)
    }

    /// `follow`, choosing the streams.
    func followStreams(_ id: Int, stdout: Bool = true, stderr: Bool = true, interrupt: @escaping () -> (any Error)? = { nil }) async throws -> JobRecord {
        var streamed = 0
        let waitingSince = Date()
        var toldWaiting = false
        while true {
            if let e = interrupt() { throw e }
            guard let job = try journal.job(id) else { throw ExitCode(1) }
            let attempt = job.attempt > streamed ? try journal.attempt(id, job.attempt) : nil
            if let a = attempt, a.agentState != nil, !a.stale, a.state != "lost" {
                if streamed > 0 { Terminal.note("job \(id): continuing with attempt \(a.attempt) on \(a.host)") }
                streamed = a.attempt
                try await copyOutput(a, follow: true, stdout: stdout, stderr: stderr) { [journal] in
                    if interrupt() != nil { return true }
                    guard let now = try journal.attempt(id, a.attempt) else { return true }
                    return now.stale || now.state == "lost"
                }
                if let now = try journal.attempt(id, a.attempt), now.stale || now.state == "lost" {
                    Terminal.note("job \(id): attempt \(a.attempt) on \(a.host) was lost (\(now.reason ?? "host down")); the job runs again elsewhere")
                }
                continue
            }
            if job.state.isFinal {
                return try await waitFinal([id]).first ?? job
            }
            let tellAt = waitingSince.addingTimeInterval(Self.waitingNote)
            if !toldWaiting, streamed == 0, job.state == .queued, Date() >= tellAt {
                toldWaiting = true
                let hosts = try journal.hosts().map { h in "\(h.name) \(h.state)\(h.slots.map { " \(h.usedSlots)/\($0) slots" } ?? "")\(h.state != "up" ? h.error.map { ": \($0)" } ?? "" : "")" }
                Terminal.note("job \(id) is still waiting for a host (\(hosts.joined(separator: "; ")))")
            }
            // Until the next commit; while the note may still be due, until it is.
            try await watch.next(until: toldWaiting || streamed > 0 ? nil : tellAt)
        }
    }

    /// Seconds a queued job waits before `run` says which hosts it is waiting for.
    static let waitingNote = 5.0

    /// The exit status `drover run` ends with for a finished job: the job's own exit code,
    /// 128+N for signal N, 124 for a timeout, 130 for a cancel, 1 otherwise.
    static func exitStatus(_ job: JobRecord, attempt: AttemptRecord?) -> Int32 {
        if job.state == .succeeded { return 0 }
        if job.state == .cancelled { return 130 }
        if attempt?.agentState == "timed_out" { return 124 }
        if let c = job.exitCode { return Int32(truncatingIfNeeded: c) }
        if let s = job.signal, let n = Signals.number(s) { return 128 + n }
        return 1
    }
}
