import ArgumentParser
import DroverCoordinator
import DroverCore
import Foundation

/// Follows a batch through the journal to its end, drawing its progress.
final class BatchFollower {
    let journal: Journal
    let batch: String
    private var renderer: ProgressRenderer?
    private var toTerminal = false
    private var json = false
    private var lastEvent = 0
    private var lastFrame = 0.0

    init(journal: Journal, batch: String, progress: ProgressChoice) {
        self.journal = journal
        self.batch = batch
        let color = LocalUser.environment("NO_COLOR").map(\.isEmpty) ?? true
        let tty = isatty(2) == 1
        switch progress {
        case .none: renderer = nil
        case .json:
            renderer = ProgressRenderer(mode: .json)
            json = true
        case .lines: renderer = ProgressRenderer(mode: .lines(color: color && isatty(1) == 1))
        case .bar: renderer = ProgressRenderer(mode: .terminal(width: Self.width(), color: color && tty)); toTerminal = true
        case .auto:
            if tty {
                renderer = ProgressRenderer(mode: .terminal(width: Self.width(), color: color))
                toTerminal = true
            } else {
                renderer = ProgressRenderer(mode: .lines(color: false))
            }
        }
        lastEvent = (try? journal.db.query("SELECT MAX(id) AS m FROM events").first?.int("m")) ?? 0
    }

    static func width() -> Int {
        var ws = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0 { return Int(ws.ws_col) }
        return 100
    }

    /// Draws until every job of the batch is over (or `interrupted` says so); returns the jobs.
    func follow(interrupted: () -> Bool) async throws -> [JobRecord] {
        while true {
            let jobs = try journal.batchJobs(batch)
            let snapshot = try self.snapshot(jobs)
            try emitChanges(jobs, snapshot)
            let now = Date().timeIntervalSince1970
            if toTerminal, now - lastFrame >= 0.2 || jobs.allSatisfy(\.state.isFinal) {
                lastFrame = now
                write(renderer?.frame(snapshot) ?? "")
            }
            if jobs.allSatisfy(\.state.isFinal) || interrupted() {
                if json { write(renderer?.snapshot(snapshot) ?? "") }
                finish()
                return jobs
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Leaves the last frame on screen and restores the cursor (also after Ctrl-C).
    func finish() {
        write(renderer?.finish() ?? "")
    }

    private func write(_ text: String) {
        guard !text.isEmpty else { return }
        if toTerminal { FileHandle.standardError.write(Data(text.utf8)) } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }

    /// Counts, ETA and hosts for the display.
    func snapshot(_ jobs: [JobRecord]) throws -> BatchProgress {
        var p = BatchProgress(batch: batch, total: jobs.count)
        var runtimes: [Double] = []
        for j in jobs {
            switch j.state {
            case .succeeded: p.succeeded += 1
            case .failed: p.failed += 1
            case .skipped: p.skipped += 1
            case .cancelled: p.cancelled += 1
            case .dispatched, .running: p.running += 1
            case .queued: p.queued += 1
            case .waiting, .approval: p.waiting += 1
            }
            if j.state == .succeeded, let s = j.startedAt, let e = j.endedAt { runtimes.append(e - s) }
        }
        let now = Date().timeIntervalSince1970
        p.elapsed = now - (jobs.map(\.submittedAt).min() ?? now)
        let hosts = try journal.hosts()
        let slots = hosts.filter { $0.state == "up" }.reduce(0) { $0 + ($1.slots ?? 1) }
        p.eta = ProgressEstimate.eta(finishedRuntimes: runtimes, remaining: p.total - p.done, parallelism: max(1, slots))
        p.hosts = hosts.map { HostProgress(name: $0.name, state: $0.state, usedSlots: $0.usedSlots, slots: $0.slots, heartbeatAge: $0.heartbeatTime.map { max(0, now - $0) }) }
        return p
    }

    /// One line (or JSON object) per state change of a job of the batch, from the audit trail.
    private func emitChanges(_ jobs: [JobRecord], _ snapshot: BatchProgress) throws {
        guard renderer != nil else { return }
        var labels: [Int: String] = [:]
        for j in jobs { labels[j.id] = j.batchJob ?? String(j.id) }
        let events = try journal.events(after: lastEvent, jobs: Array(labels.keys))
        lastEvent = events.last?.id ?? lastEvent
        for e in events {
            guard let id = e.job, let label = labels[id], let state = e.state else { continue }
            guard e.kind == "job" || (e.kind == "attempt" && state == "running") else { continue }
            // The reason alone ("exited 3", "c failed (after c:ok)"); the line already says who and what.
            let reason = e.kind == "job" && !["dispatched", "queued"].contains(state) ? e.message.split(separator: ": ", maxSplits: 1).dropFirst().first.map(String.init) ?? "" : ""
            let change = ProgressChange(time: e.time, job: label, attempt: e.attempt == 0 ? nil : e.attempt, host: e.host, state: state, message: reason)
            write(renderer!.change(change, snapshot))
        }
    }
}
