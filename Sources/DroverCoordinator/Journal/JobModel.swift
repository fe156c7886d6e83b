import DroverCore
import DroverProtocol
import Foundation

/// What a user asked to run: everything `drover run`/`submit` takes.
public struct JobRequest: Codable, Sendable, Equatable {
    /// Program and arguments, exec'd directly on the host (no shell).
    public var argv: [String]?
    /// Instead of `argv`: a line for `/bin/sh -c`.
    public var shell: String?
    public var name: String?
    /// Only this host.
    public var host: String?
    /// Only one of these hosts (`drover map -S h1,h3`); nil: any.
    public var hosts: [String]?
    /// Only hosts whose labels include all of these.
    public var labels: [String: String] = [:]
    public var slots: Int = 1
    public var priority: Int = 0
    /// Wall-clock limit in seconds.
    public var timeout: Double?
    /// Seconds its agent keeps it running without hearing from the coordinator (nil: the
    /// coordinator's `--lease-ttl`).
    public var lease: Double?
    /// Never killed by its agent for want of a lease (no dead man's switch).
    public var keepRunning: Bool?
    /// Re-runs after a failure (non-zero exit, signal, timeout, limit).
    public var retries: Int = 0
    /// Re-runs after the host was lost (separate budget).
    public var lostRetries: Int = 3
    public var memoryBytes: UInt64?
    public var cwd: String?
    public var env: [String: String] = [:]
    /// Back-off and conditions for re-runs after a failure; nil: `retries` re-runs with the default back-off.
    public var retry: RetryPolicy?
    /// Jobs of the same batch this one waits for.
    public var after: [Dependency]?
    /// Files placed in the working directory before the job starts.
    public var inputs: [InputFile]?
    /// Paths or globs (relative to the working directory) fetched after success.
    public var outputs: [String]?
    /// A gate: runs nothing, completes when approved (`drover approve`), fails after `timeout`.
    public var approval: Bool?
    /// `{%}` in the command is replaced at dispatch by the slot number on the host (drover map).
    public var fillsSlot: Bool?
    /// Files the job saves of itself, snapshotted and restored by Drover (docs/checkpoints.md).
    public var checkpoint: CheckpointSpec?
    /// GPUs it needs on its host (counted like slots; the agent gives it its own devices).
    public var gpus: Int?
    /// Host facts it needs, fact → `>=3.11`, `=3.9`, `!=…`, `<4` or `*` (present) (docs/inventory.md#facts).
    public var require: [String: String]?
    /// What undoes the job's effects when its batch fails for good (the saga pattern; docs/batches.md).
    public var compensate: Compensation?
    /// An approval gate: seconds of waiting before an `approval_escalated` notification.
    public var escalateAfter: Double?
    /// An approval gate: what happens when its `timeout` passes (nil: `fail`).
    public var onTimeout: ApprovalTimeoutAction?

    public init(argv: [String]) { self.argv = argv }
    public init(shell: String) { self.shell = shell }

    /// `hosts` as the scheduler takes it.
    public var hostSet: Set<String>? { hosts.map(Set.init) }

    /// The retry policy in force: `retry`, or `retries` re-runs with the default back-off.
    public var retryPolicy: RetryPolicy {
        retry ?? RetryPolicy(maxAttempts: retries + 1)
    }

    /// `require` as requirements (the unreadable ones are refused at submission).
    public var requirements: [FactRequirement] {
        (require ?? [:]).sorted { $0.key < $1.key }.compactMap { try? FactRequirement.parse(fact: $0.key, $0.value).get() }
    }

    /// Whether the job needs its own working directory on the host (inputs or outputs, no cwd).
    public var needsWorkdir: Bool {
        cwd == nil && (!(inputs ?? []).isEmpty || !(outputs ?? []).isEmpty || checkpoint != nil)
    }

    /// The command as one line for tables.
    public var commandLine: String {
        if approval == true { return "(approval gate)" }
        if let shell { return shell }
        return (argv ?? []).map { $0.contains(" ") || $0.isEmpty ? "'\($0)'" : $0 }.joined(separator: " ")
    }
}

/// A job's compensation: a command with the fields of a job (argv or shell, env, placement,
/// timeout, retry), run as a job of its own when the batch fails for good.
public struct Compensation: Codable, Sendable, Equatable {
    private var boxed: [JobRequest]

    public init(_ request: JobRequest) { boxed = [request] }

    /// The compensation's own request.
    public var request: JobRequest { boxed[0] }

    public init(from decoder: any Decoder) throws { boxed = [try JobRequest(from: decoder)] }
    public func encode(to encoder: any Encoder) throws { try boxed[0].encode(to: encoder) }
}

/// What an approval gate does when its `timeout` passes.
public enum ApprovalTimeoutAction: String, Codable, Sendable, CaseIterable {
    /// Keep waiting for `drover approve` (the timeout is only recorded and notified).
    case wait
    /// Approve it (recorded as approved by the timeout).
    case approve
    /// Fail it, which skips what comes after it (the default).
    case fail
}

/// Where a job stands in its batch's saga (`jobs.compensation`).
public enum CompensationState: String, Codable, Sendable, CaseIterable {
    /// Its compensation job runs (or waits for a slot).
    case compensating
    /// Its compensation succeeded.
    case compensated
    /// Its compensation failed for good: the saga stopped there.
    case compensationFailed = "compensation_failed"
}

/// A job's state in the journal.
public enum JobState: String, Codable, Sendable, CaseIterable {
    /// A batch job waiting for the jobs it depends on.
    case waiting
    /// An approval gate whose dependencies are done: waiting for `drover approve`.
    case approval
    /// Waiting for a slot (also after a lost host, or a failure with retries left and its back-off).
    case queued
    /// An attempt was sent to a host; its agent has not reported it running yet.
    case dispatched
    case running
    case succeeded
    case failed
    case cancelled
    /// A batch job that never ran because a job it depends on ended the wrong way.
    case skipped

    public var isFinal: Bool { Self.finals.contains(self) }

    public static let finals: Set<JobState> = [.succeeded, .failed, .cancelled, .skipped]
    /// `('succeeded','failed','cancelled','skipped')` for SQL.
    public static let finalSQL = "('succeeded','failed','cancelled','skipped')"
    /// States of a job that is not over: `('waiting','approval','queued','dispatched','running')`.
    public static let openSQL = "('waiting','approval','queued','dispatched','running')"
}

/// A job as recorded in the journal.
public struct JobRecord: Codable, Sendable {
    public var id: Int
    public var name: String?
    public var request: JobRequest
    public var state: JobState
    /// The current (or last) attempt number; 0 before the first.
    public var attempt: Int
    public var host: String?
    public var failures: Int
    public var losses: Int
    public var exitCode: Int?
    public var signal: String?
    /// Why the job is in its state (`exited`, `host h3 down`, `cancelled by user`, …).
    public var reason: String?
    public var submittedAt: Double
    public var startedAt: Double?
    public var endedAt: Double?
    public var cancelRequested: Bool
    /// The batch it belongs to, and its id there.
    public var batch: String?
    public var batchJob: String?
    /// A retry waits in the queue until this time (Unix seconds).
    public var notBefore: Double?
    /// On a compensation job: the journal id of the job it compensates.
    public var compensates: Int? = nil
    /// Where the job stands in its batch's saga (nil: not compensated).
    public var compensation: CompensationState? = nil
    /// The journal id of its (latest) compensation job.
    public var compensationJob: Int? = nil
    /// An approval gate's SLA so far: nil, `waiting` (announced), `escalated`, `timed_out`.
    public var escalation: String? = nil

    /// `BATCH/JOB` for batch jobs, else the numeric id.
    public var label: String {
        if let batch, let batchJob { return "\(batch)/\(batchJob)" }
        return String(id)
    }

    /// Seconds since it started (to its end, or now).
    public func elapsed(now: Double) -> Double? {
        guard let s = startedAt else { return nil }
        return (endedAt ?? now) - s
    }
}

/// One attempt of a job on one host.
public struct AttemptRecord: Codable, Sendable {
    public var job: Int
    public var attempt: Int
    public var host: String
    /// The coordinator's view: dispatched, accepted, starting, running, or a final agent state, or `lost`.
    public var state: String
    /// The last state the agent reported (nil before it accepted the attempt).
    public var agentState: String?
    /// Replaced by a newer attempt: its results never complete the job.
    public var stale: Bool
    public var startedAt: Double?
    public var endedAt: Double?
    public var exitCode: Int?
    public var signal: String?
    public var reason: String?
    public var maxRSSBytes: Int?
    public var cpuSeconds: Double?
}

/// One line of the audit trail.
public struct AuditEvent: Codable, Sendable {
    public var id: Int
    public var time: Double
    public var kind: String
    public var job: Int?
    public var attempt: Int?
    public var host: String?
    public var state: String?
    public var message: String
}

/// A host as the coordinator last saw it.
public struct HostRecord: Codable, Sendable {
    public var name: String
    /// `unknown`, `connecting`, `up`, `suspect`, `down`, `reconciling`.
    public var state: String
    public var lastSeq: Int
    public var slots: Int?
    public var usedSlots: Int
    public var agentVersion: String?
    public var agentBuild: String?
    public var heartbeatTime: Double?
    public var heartbeatSeq: Int?
    public var since: Double
    public var error: String?
    /// The machine id from the agent's heartbeat.
    public var machineID: String?
    /// An earlier inventory host with the same machine id: the same machine under two names.
    public var sameMachineAs: String?
    /// How many coordinators (this one included) hold a live lease on the host's agent.
    public var coordinators: Int?
    /// The 1-minute load average of the last recorded heartbeat.
    public var load1: Double?
    /// Memory available to new work and physical memory, from the last recorded heartbeat.
    public var memoryAvailableBytes: Int?
    public var memoryTotalBytes: Int?
}

/// Agent attempt states that end an attempt (docs/state-format.md), plus the coordinator's
/// own `never_started`: a start command the agent never accepted and never will.
public enum AgentStates {
    public static let final: Set<String> = ["exited", "signaled", "timed_out", "cancelled", "resource_limit", "orphaned", "lost", "start_failed", "never_started"]
    /// `final` as an SQL list, `('cancelled',…)` (a constant fragment: one statement text).
    static let finalSQL = "(" + final.sorted().map { "'\($0)'" }.joined(separator: ",") + ")"
}

/// What wins when a host comes back with an attempt that was already replaced.
public enum StalePolicy: String, Sendable, CaseIterable {
    /// Kill the original; the replacement goes on (the default).
    case killStale = "kill-stale"
    /// Keep the original when the replacement has not finished; cancel the replacement.
    case keepOriginal = "keep-original"
}
