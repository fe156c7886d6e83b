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
        try await waitFinal(ids, until: timeout.map { Date().addingTimeInterval($0) })
    }

    /// Waits until every job is final, `deadline` passes, or `giveUp` says so when the watch
    /// wakes (`poke()` it then); returns their last records.
    func waitFinal(_ ids: [Int], until deadline: Date?, giveUp: @escaping () -> Bool = { false }) async throws -> [JobRecord] {
        try await watch.reread(until: deadline, { try journal.jobs(ids) }, done: { $0.allSatisfy(\.state.isFinal) || giveUp() })
    }

    /// The shell line that prints an attempt's output on its host.
    private func outputCommand(_ attempt: AttemptRecord, follow: Bool, stdout: Bool, stderr: Bool) throws -> String {
        try Self.outputCommand(attempt, journal: journal, inventory: inventory, follow: follow, stdout: stdout, stderr: stderr)
    }

    /// The shell line that prints an attempt's output on its host (also for `drover serve`).
    static func outputCommand(_ attempt: AttemptRecord, journal: Journal, inventory: Inventory, follow: Bool, stdout: Bool = true, stderr: Bool = true) throws -> String {
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
    /// until the attempt ends or `stop` says to give up on it. While nothing has come from the
    /// host yet, an attempt that ends with its output kept locally (`AttemptOutput`, small
    /// outputs come with the end) is printed from here and the connection is dropped: a short
    /// job costs no SSH connection at all.
    func copyOutput(_ attempt: AttemptRecord, follow: Bool, stdout: Bool = true, stderr: Bool = true, stop: (() throws -> Bool)? = nil) async throws {
        guard let spec = inventory.host(named: attempt.host) else {
            Terminal.error("host \(attempt.host) of this job is not in \(inventory.source) (pass the coordinator's inventory with --inventory)")
            throw ExitCode(1)
        }
        if follow, let kept = try storedOutput(attempt) {
            printKept(kept, stdout: stdout, stderr: stderr)
            return
        }
        let command = try outputCommand(attempt, follow: follow, stdout: stdout, stderr: stderr)
        let existing = sessions[attempt.host]
        struct Pump { var wrote = false, abandoned = false, stream: HostStream?, session: (any HostSession)? }
        let shared = Locked(Pump())
        let done = Locked<Result<ExitStatus?, any Error>?>(nil)
        let watch = self.watch
        let pump = Task {
            defer { watch.poke() }
            do {
                let session: any HostSession
                if let existing { session = existing } else { session = try await spec.openSession() }
                let stream = try session.stream(command, stdin: nil)
                let abandoned = shared.withLock { p -> Bool in
                    p.session = session
                    p.stream = stream
                    return p.abandoned
                }
                if abandoned {
                    // Given up while connecting: nobody waits for this connection any more.
                    stream.cancel()
                    if existing == nil { await session.shutdown() }
                    return
                }
                var status: ExitStatus?
                for try await event in stream {
                    guard shared.withLock({ p -> Bool in
                        if p.abandoned { return false }
                        p.wrote = true
                        return true
                    }) else { break }
                    switch event {
                    case .stdout(let b): FileHandle.standardOutput.write(Data(b))
                    case .stderr(let b): FileHandle.standardError.write(Data(b))
                    case .exit(let s): status = s
                    }
                }
                done.withLock { $0 = .success(status) }
                if existing == nil, shared.withLock({ $0.abandoned }) { await session.shutdown() }
            } catch {
                done.withLock { $0 = .failure(error) }
            }
        }
        /// Stops the pump; true when it had written nothing yet (the caller may print instead).
        func abandon() -> Bool {
            let (fresh, stream) = shared.withLock { p -> (Bool, HostStream?) in
                p.abandoned = true
                return (!p.wrote, p.stream)
            }
            stream?.cancel()
            return fresh
        }
        var stopped = false
        // `stop` looks at the journal after each commit; the pump pokes the watch when the stream ends.
        while done.withLock({ $0 }) == nil {
            if let stop, try stop() {
                _ = abandon()
                stopped = true
                break
            }
            if follow, !shared.withLock({ $0.wrote }), let kept = try storedOutput(attempt) {
                if abandon() {
                    printKept(kept, stdout: stdout, stderr: stderr)
                    stopped = true
                    break
                }
            }
            let wake = await watch.wait(timeout: nil)
            if wake == .cancelled || wake == .stopped {
                _ = abandon()
                stopped = true
                break
            }
        }
        // A pump given up before it wrote anything may still be connecting: it closes its own
        // session then; waiting for it would cost a whole SSH handshake.
        let early = stopped && !shared.withLock { $0.wrote }
        if !early {
            await pump.value
            let (session, abandoned) = shared.withLock { ($0.session, $0.abandoned) }
            if let session, existing == nil, !abandoned { sessions[attempt.host] = session }
        }
        if !stopped, case .failure(let e) = done.withLock({ $0 }), !(try stop?() ?? false) {
            Terminal.error("output of job \(attempt.job) on \(attempt.host): \(e)")
        }
    }

    /// The output kept locally of an attempt that has ended, if it is here.
    private func storedOutput(_ attempt: AttemptRecord) throws -> (stdout: [UInt8], stderr: [UInt8])? {
        guard let now = try journal.attempt(attempt.job, attempt.attempt), let state = now.agentState, AgentStates.final.contains(state) else { return nil }
        return AttemptOutput.read(state: journal.state, job: attempt.job, attempt: attempt.attempt)
    }

    private func printKept(_ kept: (stdout: [UInt8], stderr: [UInt8]), stdout: Bool, stderr: Bool) {
        if stdout && !kept.stdout.isEmpty { FileHandle.standardOutput.write(Data(kept.stdout)) }
        if stderr && !kept.stderr.isEmpty { FileHandle.standardError.write(Data(kept.stderr)) }
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
