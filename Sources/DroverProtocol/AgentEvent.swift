import DroverCore

/// One line of an agent's event log (`events.log`) without its `seq` and `time`, which the
/// log adds: what the agent reports and the coordinator applies.
public enum AgentEvent: Sendable, Equatable {
    case transition(TransitionEvent)
    /// An inbox file that was not executed, with why; `start` names the attempt when the file
    /// was a well-formed start the agent refused (e.g. too few GPUs free), so the coordinator
    /// can end that attempt instead of waiting for it. A start of an attempt the agent already
    /// has (resent after a reconnect) names none: that attempt goes on.
    case rejected(file: String, reason: String, start: AttemptID? = nil)
    /// A coordinator's lease ran out; `orphaned` of its attempts were cancelled.
    case leaseExpired(coordinator: String, epoch: Int, orphaned: Int)
    /// This agent took its state directory over from another system whose agent looked dead.
    case ownerChanged(previousMachineID: String, previousHostname: String, machineID: String, hostname: String)
    case agentStarted(pid: Int, machineID: String, hostname: String)
    case agentStopped(pid: Int)
    /// An attempt's shim took a snapshot of its checkpoint files (docs/checkpoints.md).
    case checkpoint(CheckpointEvent)
    /// A type this side does not know (from a newer agent): recorded by neither side's logic.
    case other(type: String)

    /// The JSON object of the event (without `seq` and `time`). Transitions are written by the
    /// agent from the shim's transition lines, so they have no encoder here.
    public var json: String {
        var o = JSONObject()
        switch self {
        case .transition(let t):
            o.set("type", "transition")
            o.set("job", t.job)
            o.set("attempt", t.attempt)
            o.set("state", t.state.rawValue)
        case .rejected(let file, let reason, let start):
            o.set("type", "rejected")
            o.set("file", file)
            o.set("reason", reason)
            if let start {
                o.set("job", start.job)
                o.set("attempt", start.attempt)
            }
        case .leaseExpired(let coordinator, let epoch, let orphaned):
            o.set("type", "lease_expired")
            o.set("coordinator", coordinator)
            o.set("epoch", epoch)
            o.set("orphaned", orphaned)
        case .ownerChanged(let pm, let ph, let m, let h):
            o.set("type", "owner_changed")
            o.set("previous_machine_id", pm)
            o.set("previous_hostname", ph)
            o.set("machine_id", m)
            o.set("hostname", h)
        case .agentStarted(let pid, let m, let h):
            o.set("type", "agent_started")
            o.set("pid", pid)
            o.set("machine_id", m)
            o.set("hostname", h)
        case .agentStopped(let pid):
            o.set("type", "agent_stopped")
            o.set("pid", pid)
        case .checkpoint(let c):
            return "{\"type\":\"checkpoint\"," + c.jsonObject.text.dropFirst()
        case .other(let type):
            o.set("type", type)
        }
        return o.text
    }

    /// Reads an event line; an unknown or incomplete one is `.other`.
    public static func parse(_ node: JSONNode) -> AgentEvent {
        let type = node["type"]?.stringValue ?? "?"
        func s(_ k: String) -> String { node[k]?.stringValue ?? "?" }
        func i(_ k: String) -> Int { node[k]?.intValue ?? 0 }
        switch type {
        case "transition": return TransitionEvent(node).map { .transition($0) } ?? .other(type: type)
        case "rejected":
            let start = node["job"]?.stringValue.flatMap { job in node["attempt"]?.intValue.map { AttemptID(job: job, attempt: $0) } }
            return .rejected(file: s("file"), reason: s("reason"), start: start)
        case "lease_expired": return .leaseExpired(coordinator: s("coordinator"), epoch: i("epoch"), orphaned: i("orphaned"))
        case "owner_changed": return .ownerChanged(previousMachineID: s("previous_machine_id"), previousHostname: s("previous_hostname"), machineID: s("machine_id"), hostname: s("hostname"))
        case "agent_started": return .agentStarted(pid: i("pid"), machineID: s("machine_id"), hostname: s("hostname"))
        case "agent_stopped": return .agentStopped(pid: i("pid"))
        case "checkpoint": return CheckpointEvent(node).map { .checkpoint($0) } ?? .other(type: type)
        default: return .other(type: type)
        }
    }
}

/// An attempt moved to `state` (state-format.md lists the fields of each state).
public struct TransitionEvent: Sendable, Equatable {
    public var job: String
    public var attempt: Int
    public var state: AttemptState
    public var exitCode: Int?
    public var signal: String?
    /// `memory` or `cpu`, for `resource_limit`.
    public var limit: String?
    public var error: String?
    public var maxRSSBytes: Int?
    public var cpuSeconds: Double?
    /// A cancel of an attempt the coordinator had given up on.
    public var stale: Bool
    /// Small stdout and stderr, carried by an end on the link.
    public var output: InlineOutput?

    public init(job: String, attempt: Int, state: AttemptState) {
        self.job = job
        self.attempt = attempt
        self.state = state
        stale = false
    }

    /// Reads a transition event; nil when its job, attempt or state is missing or unknown.
    public init?(_ node: JSONNode) {
        guard let job = node["job"]?.stringValue, let n = node["attempt"]?.intValue,
              let state = node["state"]?.stringValue.flatMap(AttemptState.init(rawValue:)) else { return nil }
        self.init(job: job, attempt: n, state: state)
        exitCode = node["exit_code"]?.intValue
        signal = node["signal"]?.stringValue
        limit = node["limit"]?.stringValue
        error = node["error"]?.stringValue
        maxRSSBytes = node["max_rss_bytes"]?.intValue
        let user = node["user_cpu_seconds"]?.doubleValue, system = node["system_cpu_seconds"]?.doubleValue
        if user != nil || system != nil { cpuSeconds = (user ?? 0) + (system ?? 0) }
        stale = node["stale"]?.boolValue ?? false
        output = InlineOutput(event: node)
    }

    /// "exited 3", "signaled SIGKILL", "timed_out", "start_failed: no such file"; "" before the end.
    public var summary: String {
        guard state.isFinal else { return "" }
        var text = state.rawValue
        if let exitCode { text += " \(exitCode)" }
        if let signal { text += " SIG\(signal)" }
        if let limit { text += " (\(limit))" }
        if let error { text += ": \(error)" }
        return text
    }
}
