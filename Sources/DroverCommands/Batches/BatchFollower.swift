import ArgumentParser
import DroverCoordinator
import DroverCore
import Foundation

/// Follows a batch through the journal to its end, drawing its progress. It reads the
/// journal again only after a commit (`JournalWatch`), and then only the jobs the commits
/// since its last reading changed (`Journal.batchChanges`), with a full reading every
/// `fullReadInterval` and before it calls the batch over; a terminal display is redrawn from
/// the last reading every 0.2 s in between (elapsed time, ETA, heartbeat ages).
final class BatchFollower {
    let journal: Journal
    let batch: String
    /// Wakes the follower on each commit; `poke()` it to make it look again now (Ctrl-C).
    let watch: JournalWatch
    private var renderer: ProgressRenderer?
    private var toTerminal = false
    private var json = false
    private var lastEvent = 0
    private var lastFrame = 0.0
    /// The jobs' states as of `lastEvent`, moved on event by event for the change lines.
    private var tally: ProgressTally
    /// Progress lines go to stderr (for `drover map`, whose stdout is the jobs' output).
    private let linesToStandardError: Bool
    /// Called with the batch's jobs after each reading of the journal (`drover map` prints their output).
    var onRead: (([JobRecord]) throws -> Void)?
    /// The next time (Unix seconds) `onRead` must see the jobs again even without a commit (`drover map --timeout N%`).
    var deadline: (() -> Double?)?
    /// The batch's jobs as last read, in id order, and each one's index there.
    private var known: [JobRecord] = []
    private var index: [Int: Int] = [:]
    /// The audit event the job rows in `known` are current to, and when they were last all read.
    private var readThrough = 0
    private var lastFullRead = -Double.infinity
    private var lastReadWasFull = false

    /// `eventsSince`: the last audit event before the batch was submitted (its changes from
    /// there are shown, also those that happened before the follower started); nil: from now.
    init(journal: Journal, batch: String, progress: ProgressChoice, linesToStandardError: Bool = false, eventsSince: Int? = nil) throws {
        self.journal = journal
        self.linesToStandardError = linesToStandardError
        self.batch = batch
        watch = try JournalWatch(journal)
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
        // Every reading decodes each job's request unless it is cached: keep them all (the
        // follower holds every job of the batch anyway).
        journal.keepsEveryRequest = true
        let start = try journal.batchReading(batch, eventsAfter: nil)
        // A job that ended before this reading (a fast job, a slow start of this process) would
        // otherwise have no line of its own: found as a flaky test under load.
        lastEvent = eventsSince.map { min($0, start.lastEvent) } ?? start.lastEvent
        tally = ProgressTally(start.jobs)
    }

    /// The seconds between two full readings of the batch (each costs a row per job).
    static let fullReadInterval = 2.0

    /// Reads the batch: every job (`full`, or when the last full reading is old), else only the
    /// jobs named by the events since the last reading, merged into the jobs known.
    private func read(full: Bool) throws -> BatchReading {
        let now = Date().timeIntervalSince1970
        if full || now - lastFullRead >= Self.fullReadInterval {
            let r = try journal.batchReading(batch, eventsAfter: showsChanges ? lastEvent : nil)
            known = r.jobs
            index = Dictionary(uniqueKeysWithValues: known.enumerated().map { ($1.id, $0) })
            // Where the events were cut short the rows are newer still: reading from there is safe.
            readThrough = r.lastEvent
            lastFullRead = now
            lastReadWasFull = true
            return r
        }
        let r = try journal.batchChanges(batch, eventsAfter: showsChanges ? min(readThrough, lastEvent) : readThrough)
        var added = false
        for job in r.jobs {
            if let i = index[job.id] {
                known[i] = job
            } else {
                index[job.id] = known.count
                known.append(job)
                added = true
            }
        }
        if added && !zip(known, known.dropFirst()).allSatisfy({ $0.id < $1.id }) {
            known.sort { $0.id < $1.id }
            index = Dictionary(uniqueKeysWithValues: known.enumerated().map { ($1.id, $0) })
        }
        readThrough = r.lastEvent
        lastReadWasFull = false
        var merged = r
        merged.jobs = known
        return merged
    }

    deinit { watch.stop() }

    static func width() -> Int {
        var ws = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0 { return Int(ws.ws_col) }
        return 100
    }

    /// Draws until every job of the batch is over (or `interrupted` says so); returns the jobs.
    func follow(interrupted: () -> Bool) async throws -> [JobRecord] {
        var fresh = true
        var jobs: [JobRecord] = []
        var hosts: [HostRecord] = []
        var reading: BatchReading?
        var lastRead = -Double.infinity
        var readAll = false
        while true {
            if fresh {
                // A busy batch commits hundreds of times a second: read at most every
                // `rereadInterval`, so following costs the same for 10 jobs or 100,000.
                let gap = lastRead + Self.rereadInterval - Date().timeIntervalSince1970
                if gap > 0 && !readAll { try await Task.sleep(for: .seconds(gap)) }
                lastRead = Date().timeIntervalSince1970
                reading = try read(full: readAll)
                jobs = reading?.jobs ?? []
                hosts = reading?.hosts ?? []
                try onRead?(jobs)
            }
            let snapshot = self.snapshot(jobs, hosts: hosts)
            if fresh, let reading { emitChanges(reading, snapshot) }
            let over = jobs.allSatisfy(\.state.isFinal)
            if over && !lastReadWasFull && !interrupted() {
                // Over as far as the changes tell: a full reading says so for certain.
                readAll = true
                fresh = true
                continue
            }
            readAll = false
            let now = Date().timeIntervalSince1970
            if toTerminal, now - lastFrame >= Self.frameInterval * 0.9 || over {
                lastFrame = now
                write(renderer?.frame(snapshot) ?? "")
            }
            if over || interrupted() {
                if json { write(renderer?.snapshot(snapshot) ?? "") }
                finish()
                return jobs
            }
            // The next commit; on a terminal, the next frame at the latest; a deadline's time.
            let due = deadline?()
            let until = [toTerminal ? lastFrame + Self.frameInterval : nil, due].compactMap { $0 }.min()
            let wake = try await watch.next(until: until.map { Date(timeIntervalSince1970: $0) })
            fresh = wake != .timedOut || due.map { $0 <= Date().timeIntervalSince1970 } ?? false
        }
    }

    /// The least time between two readings of the journal, seconds.
    static let rereadInterval = 0.05

    /// Seconds between two frames of the terminal display.
    static let frameInterval = 0.2

    /// Leaves the last frame on screen and restores the cursor (also after Ctrl-C).
    func finish() {
        write(renderer?.finish() ?? "")
    }

    private func write(_ text: String) {
        guard !text.isEmpty else { return }
        if toTerminal || linesToStandardError { FileHandle.standardError.write(Data(text.utf8)) } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }

    /// Counts, ETA and hosts for the display, from the batch's jobs and the hosts as read.
    func snapshot(_ jobs: [JobRecord], hosts: [HostRecord]) -> BatchProgress {
        var p = BatchProgress(batch: batch, total: jobs.count)
        p.count(jobs.map(\.state))
        let runtimes = jobs.compactMap { j in j.state == .succeeded ? j.startedAt.flatMap { s in j.endedAt.map { $0 - s } } : nil }
        let now = Date().timeIntervalSince1970
        p.elapsed = now - (jobs.map(\.submittedAt).min() ?? now)
        let slots = hosts.filter { $0.state == "up" }.reduce(0) { $0 + ($1.slots ?? 1) }
        p.eta = ProgressEstimate.eta(finishedRuntimes: runtimes, remaining: p.total - p.done, parallelism: max(1, slots))
        p.hosts = hosts.map { HostProgress(name: $0.name, state: $0.state, usedSlots: $0.usedSlots, slots: $0.slots, heartbeatAge: $0.heartbeatTime.map { max(0, now - $0) }) }
        return p
    }

    /// Whether the mode prints one line (or JSON object) per change: lines and json.
    private var showsChanges: Bool { renderer != nil && !toTerminal }

    /// One line (or JSON object) per state change of a job of the batch, from the audit trail;
    /// each counts the jobs as they were right after its event.
    private func emitChanges(_ reading: BatchReading, _ snapshot: BatchProgress) {
        guard showsChanges else { return }
        var labels: [Int: String] = [:]
        for j in reading.jobs { labels[j.id] = j.batchJob ?? String(j.id) }
        for e in reading.events {
            tally.apply(e)
            guard let id = e.job, let label = labels[id], let state = e.state else { continue }
            guard e.kind == "job" || (e.kind == "attempt" && state == "running") else { continue }
            // The reason alone ("exited 3", "c failed (after c:ok)"); the line already says who and what.
            let reason = e.kind == "job" && !["dispatched", "queued"].contains(state) ? e.message.split(separator: ": ", maxSplits: 1).dropFirst().first.map(String.init) ?? "" : ""
            let change = ProgressChange(time: e.time, job: label, attempt: e.attempt == 0 ? nil : e.attempt, host: e.host, state: state, message: reason)
            var then = snapshot
            tally.count(into: &then)
            write(self.renderer!.change(change, then))
        }
        lastEvent = reading.lastEvent
        // Where the events end, the states read are the truth (also for changes no event names).
        if reading.complete { tally.reset(reading.jobs) }
    }
}
