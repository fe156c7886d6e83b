import ArgumentParser
import DroverCoordinator
import DroverCore
import Foundation

/// A map from submission to exit status: follows the batch, prints each job's output as it
/// ends, applies `--halt`, writes the joblog and report, and returns parallel's exit status.
struct MapRun {
    let submission: BatchSubmission
    let build: MapBuilder.Built
    let options: MapOptions
    let state: StateOptions

    /// Runs the map; the exit status as parallel's: 0, the failed jobs (at most 101), the
    /// failing job's status under `--halt …,fail=1`, 130 after Ctrl-C.
    func run() async throws -> Int32 {
        let spec = submission.spec
        if spec.jobs.isEmpty {
            if let path = options.joblog, !LocalFile.exists(path) { try? AtomicFile.write(Array((MapJoblog.header + "\n").utf8), to: path, mode: 0o644) }
            return 0
        }
        let journal: Journal
        let ran: Set<String>
        let eventsBefore: Int
        do {
            let (j, result) = try submission.submit(state: state, quiet: options.progress == nil)
            journal = j
            ran = Set(result.plan.run.map(\.job.id))
            eventsBefore = result.eventsBefore
        } catch {
            throw ExitCode(255)
        }
        // Only this run's jobs count (not those a resume keeps from before).
        // (When the batch is this run's jobs, the list as read: no copy of each job.)
        let current = { (jobs: [JobRecord]) in
            jobs.count == ran.count && jobs.allSatisfy({ ran.contains($0.batchJob ?? "") }) ? jobs : jobs.filter { ran.contains($0.batchJob ?? "") }
        }
        if options.detach {
            print(spec.name)
            return 0
        }
        let folder = try journal.batch(named: spec.name)?.folder ?? submission.resultsRoot + "/" + spec.name
        let output = MapOutput(folder: folder, keepOrder: options.keepOrder, tags: build.tags, returns: !options.returns.isEmpty, verbose: options.verbose)
        if options.parallelResults, let dir = options.results { output.parallelResults = (dir, build.values) }
        let interrupt = InterruptWatch()
        defer { interrupt.stop() }
        let progress = options.progress ?? .none
        let follower = try BatchFollower(journal: journal, batch: spec.name, progress: progress == .auto ? .bar : progress,
                                         linesToStandardError: progress != .json, eventsSince: eventsBefore)
        interrupt.wakes(follower.watch)
        var halted: JobRecord?
        /// Jobs `--timeout N%` killed: failed, as parallel counts them.
        var timedOut: Set<Int> = []
        // With JSON progress, stdout is JSON lines only: the jobs' output stays in the results folder.
        let printing = progress != .json
        var toldQuarantine = false
        // --line-buffer: lines as they come (with -k, each job's at its turn, as --group).
        let lines = printing && options.lineBuffer && !options.keepOrder
            ? MapLineStream(journal: journal, inventory: submission.inventory, tags: build.tags, verbose: options.verbose) : nil
        if let lines { output.streamed = { lines.claims($0) } }
        let timeout = try options.timeout.flatMap(MapTimeout.percent).map { MapTimeout(percent: $0, journal: journal) }
        var nextTimeout: Double?
        follower.deadline = { nextTimeout }
        // Called after every reading (up to 20 a second): the list is filtered once, and each
        // check below is one pass over it without copies (the client's CPU per job grew with
        // the batch while each made its own filtered copy).
        follower.onRead = { read in
            let jobs = current(read)
            if let timeout {
                nextTimeout = try timeout.apply(jobs, now: Date().timeIntervalSince1970) { job in
                    guard let n = job.batchJob.flatMap({ Int($0) }), n >= 1, n <= build.values.count else { return job.label }
                    return "\(n) (\(build.values[n - 1].joined(separator: " ")))"
                }
                timedOut = timeout.killed
            }
            try lines?.update(jobs)
            if printing { output.printFinished(jobs) }
            if !toldQuarantine { toldQuarantine = try tellIfEveryHostIsQuarantined(jobs, journal: journal) }
            if halted == nil, let trigger = try halt(jobs, journal: journal, timedOut: timedOut) { halted = trigger }
        }
        var jobs = try await follower.follow { interrupt.fired }
        if interrupt.fired {
            try await BatchRun.handleInterrupt(journal, watch: follower.watch, batch: spec.name, jobs: jobs, choice: InterruptChoice.resolve(options.onInterrupt))
            jobs = try journal.batchJobs(spec.name)
        }
        jobs = current(jobs)
        if let lines {
            if interrupt.fired { await lines.cancel() } else { await lines.finish() }
        }
        if printing { output.printFinished(jobs) }
        if let lines { output.printOutput(of: lines.fellBack) }
        try BatchRun.report(journal, batch: spec.name, joblog: nil, print: options.progress != nil && options.progress != .json, to: .standardError)
        if let path = options.joblog, let batch = try journal.batch(named: spec.name) {
            MapJoblog.write(try BatchReport.build(journal, batch: batch), to: path, append: options.resume || options.resumeFailed || options.retryFailed)
        }
        if interrupt.fired { return 130 }
        return status(jobs, halted: halted, timedOut: timedOut)
    }

    /// Applies `--halt` to the jobs as read: cancels what it says, returns the job that triggered it.
    private func halt(_ jobs: [JobRecord], journal: Journal, timedOut: Set<Int>) throws -> JobRecord? {
        let h = options.halt
        guard h.when != .never else { return nil }
        let failed = jobs.filter { $0.state == .failed || ($0.state == .cancelled && timedOut.contains($0.id)) }
        let succeeded = jobs.filter { $0.state == .succeeded }
        guard h.reached(failed: failed.count, succeeded: succeeded.count, total: jobs.count) else { return nil }
        // `now` kills the running jobs; `soon` lets them finish and starts no more.
        let stop = jobs.filter { !$0.state.isFinal && (h.when == .now || ![.dispatched, .running].contains($0.state)) }
        if !stop.isEmpty { _ = try journal.requestCancel(stop.map(\.id)) }
        let trigger = h.why == .success ? succeeded : h.why == .fail ? failed : failed + succeeded
        return trigger.max { ($0.endedAt ?? 0) < ($1.endedAt ?? 0) }
    }

    /// A map whose jobs wait because every host is quarantined (its jobs failed quickly in a
    /// row there, as a black hole's do) says so once, instead of waiting in silence.
    private func tellIfEveryHostIsQuarantined(_ jobs: [JobRecord], journal: Journal) throws -> Bool {
        // Any job dispatched or running (the usual case) ends the check at the first one found.
        guard !jobs.contains(where: { $0.state == .dispatched || $0.state == .running }) else { return false }
        let waiting = jobs.reduce(0) { $0 + ($1.state == .queued ? 1 : 0) }
        guard waiting > 0 else { return false }
        let held = Set(try journal.quarantines().filter { $0.state != .closed }.map(\.host))
        // The hosts the map may use (-S, --host), else all.
        let first = submission.spec.jobs.first?.request
        let allowed = first?.hosts ?? first?.host.map { [$0] } ?? submission.inventory.hosts.map(\.name)
        guard allowed.allSatisfy({ held.contains($0) }) else { return false }
        Terminal.note("\(waiting) job(s) wait: every host is quarantined, after jobs failed quickly in a row there (`drover hosts` says why; `drover hosts release HOST` sends jobs there again; `drover coordinator --no-quarantine` turns this off)")
        return true
    }

    /// parallel's exit status for the jobs at the end.
    private func status(_ jobs: [JobRecord], halted: JobRecord?, timedOut: Set<Int>) -> Int32 {
        let failed = jobs.filter { $0.state == .failed || $0.state == .skipped || ($0.state == .cancelled && timedOut.contains($0.id)) }.count
        if let halted, options.halt.why == .fail, options.halt.count == 1, !options.halt.percent {
            if let code = halted.exitCode, code != 0 { return Int32(code & 255) }
            return halted.signal.flatMap(Signals.number).map { 128 + $0 } ?? 1
        }
        if halted != nil, options.halt.why == .success { return 0 }
        if halted != nil, options.halt.percent, options.halt.why == .fail { return Int32(min(100, failed * 100 / max(1, jobs.count))) }
        return Int32(min(failed, 101))
    }
}
