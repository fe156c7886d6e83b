/// The states of a batch's jobs as the audit trail moves them, event by event, so that each
/// line of the progress display counts the jobs as they were at its event, not as they are
/// when the display reads the journal (which can be after the whole batch ended).
public struct ProgressTally: Sendable {
    /// Each job's state, by journal id.
    public private(set) var states: [Int: JobState] = [:]
    /// Each job's current attempt, where known (a replaced attempt's events move nothing).
    private var attempts: [Int: Int] = [:]

    /// Starts from the jobs as read.
    public init(_ jobs: [JobRecord]) { reset(jobs) }

    /// Takes the jobs' states as read (at the instant the events applied so far end).
    public mutating func reset(_ jobs: [JobRecord]) {
        states = Dictionary(jobs.map { ($0.id, $0.state) }) { _, last in last }
        attempts = Dictionary(jobs.map { ($0.id, $0.attempt) }) { _, last in last }
    }

    /// Applies one audit event: a job's new state (`job` events), or its current attempt's
    /// process starting (`attempt` … `running`). Events of other jobs change nothing.
    public mutating func apply(_ e: AuditEvent) {
        guard let id = e.job, let current = states[id], let state = e.state else { return }
        switch e.kind {
        case "submitted":
            // Where a job begins (queued, or waiting for its dependencies).
            guard let first = JobState(rawValue: state) else { return }
            states[id] = first
        case "job":
            guard let next = JobState(rawValue: state) else { return }
            states[id] = next
            if let n = e.attempt, n > 0 { attempts[id] = n }
        case "attempt" where state == "running":
            guard current == .dispatched || current == .queued, e.attempt == nil || e.attempt == attempts[id] else { return }
            states[id] = .running
        default:
            return
        }
    }

    /// The counts of `p` (total and one per state) from the states held.
    public func count(into p: inout BatchProgress) {
        p.count(Array(states.values))
    }
}

extension BatchProgress {
    /// Sets `total` and the count of each state from the jobs' states, exactly as the journal
    /// has them: `running` only once the process started, `starting` while dispatched.
    public mutating func count(_ states: [JobState]) {
        (total, succeeded, failed, skipped, cancelled, running, starting, queued, waiting) = (states.count, 0, 0, 0, 0, 0, 0, 0, 0)
        for s in states {
            switch s {
            case .succeeded: succeeded += 1
            case .failed: failed += 1
            case .skipped: skipped += 1
            case .cancelled: cancelled += 1
            case .running: running += 1
            case .dispatched: starting += 1
            case .queued: queued += 1
            case .waiting, .approval: waiting += 1
            }
        }
    }
}
