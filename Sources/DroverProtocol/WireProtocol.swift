import DroverCore

/// The version of the messages and files exchanged by coordinator and agent. Both sides say
/// theirs when a link opens; a coordinator refuses an agent of another version (and deploys
/// its own), so no side ever reads a message it could misunderstand.
public enum WireProtocol {
    /// 2: the two-way `link` channel (commands down, events and small results up).
    /// 3: host facts (`facts` down and up the link) and GPUs in the attempt spec.
    public static let version = 3
    /// The most stdout, and the most stderr, an end event carries inline; larger outputs are fetched.
    public static let inlineOutputLimit = 64 * 1024
}

/// A message that could not be read, with why.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Why the coordinator cancels an attempt.
public enum CancelReason: String, Sendable, CaseIterable {
    /// A user asked.
    case cancelled
    /// The coordinator gave up on the attempt (replaced, or its job is over).
    case stale
    /// The lease ran out.
    case orphaned
}

/// A coordinator's lease on its attempts at one agent: renewed every ttl/3; when it is not
/// renewed within `ttl` seconds (on the agent's clock), the agent cancels that coordinator's
/// attempts as orphaned, unless they keep running.
public struct Lease: Sendable, Equatable {
    public var coordinator: String
    public var epoch: Int
    /// The coordinator's wall clock when it wrote the lease (informative only).
    public var time: Double
    public var ttl: Double
    /// The highest event `seq` of this agent the coordinator has applied, committed and whose
    /// results it has fetched: attempts of this coordinator whose final transition is at or
    /// below it are collected, and retention may remove them (nil: nothing said).
    public var collected: Int?
    /// How often the coordinator wants a heartbeat, seconds (from its dead-host verdict time,
    /// `HeartbeatCadence`): the agent beats at the shortest such wish of its live leases, and
    /// at its own `--heartbeat-interval` when none says (nil: no wish).
    public var beat: Double?

    public init(coordinator: String, epoch: Int, time: Double, ttl: Double, collected: Int? = nil, beat: Double? = nil) {
        self.coordinator = coordinator
        self.epoch = epoch
        self.time = time
        self.ttl = ttl
        self.collected = collected
        self.beat = beat
    }

    /// The lease file's content (`leases/<coordinator>`).
    public var json: String {
        var o = JSONObject()
        o.set("coordinator", coordinator)
        o.set("epoch", epoch)
        o.set("time", time)
        o.set("ttl", ttl)
        if let collected { o.set("collected", collected) }
        if let beat { o.set("beat", beat) }
        return o.text
    }

    public static func parse(_ node: JSONNode) -> Result<Lease, WireError> {
        guard let c = node["coordinator"]?.stringValue, AttemptID.isValidJob(c) else {
            return .failure(WireError("a lease needs \"coordinator\": letters, digits, - _ ."))
        }
        guard let ttl = node["ttl"]?.doubleValue, ttl > 0 else { return .failure(WireError("a lease needs a positive \"ttl\"")) }
        return .success(Lease(coordinator: c, epoch: node["epoch"]?.intValue ?? 0, time: node["time"]?.doubleValue ?? 0, ttl: ttl,
                              collected: node["collected"]?.intValue.flatMap { $0 >= 0 ? $0 : nil },
                              beat: node["beat"]?.doubleValue.flatMap(HeartbeatCadence.valid)))
    }
}

/// How often an agent beats for a coordinator: often enough that a live host is never taken
/// for dead, rarely enough that an idle host costs next to nothing.
public enum HeartbeatCadence {
    /// The beat interval a coordinator asks for: a quarter of its dead-host verdict time
    /// (`--dead-after`), between 0.25 and 5 s — 2.5 s for the default 10 s, 0.75 s for 3 s.
    /// A host then misses three beats before it is suspect and four before it is down.
    public static func interval(deadAfter: Double) -> Double {
        min(5, max(0.25, deadAfter / 4))
    }

    /// The range an agent accepts (as for `run --heartbeat-interval`); nil outside it.
    public static func valid(_ seconds: Double) -> Double? {
        seconds >= 0.05 && seconds <= 60 ? seconds : nil
    }
}

/// A command from a coordinator to an agent: one JSON line on the link, or one inbox file.
public enum AgentCommand: Sendable, Equatable {
    case start(AttemptSpec)
    case cancel(job: String, attempt: Int?, reason: CancelReason)
    case signal(job: String, attempt: Int?, signal: String)
    /// Renews (writes) the coordinator's lease; handled by `link`, never placed in the inbox.
    case lease(Lease)
    /// Collects the host's facts; handled by `link` (the answer is a `facts` line), never placed in the inbox.
    case facts(FactsRequest)

    /// The JSON line.
    public var line: String {
        var o = JSONObject()
        switch self {
        case .start(let spec):
            o.set("type", "start")
            o.set("spec", raw: spec.json)
        case .cancel(let job, let attempt, let reason):
            o.set("type", "cancel")
            o.set("job", job)
            o.set("attempt", attempt)
            o.set("reason", reason.rawValue)
        case .signal(let job, let attempt, let signal):
            o.set("type", "signal")
            o.set("job", job)
            o.set("attempt", attempt)
            o.set("signal", signal)
        case .lease(let lease):
            o.set("type", "lease")
            o.set("lease", raw: lease.json)
        case .facts(let request):
            o.set("type", "facts")
            o.set("request", object: request.jsonObject)
        }
        return o.text
    }

    /// Reads a command; `file` names where it came from in errors.
    public static func parse(_ node: JSONNode, file: String) -> Result<AgentCommand, WireError> {
        guard let type = node["type"]?.stringValue else { return .failure(WireError("missing \"type\" (start, cancel, signal or lease)")) }
        switch type {
        case "start":
            guard let spec = node["spec"] else { return .failure(WireError("a start command needs \"spec\"")) }
            switch AttemptSpec.parse(spec, file: file + " spec") {
            case .success(let s): return .success(.start(s))
            case .failure(let e): return .failure(WireError(e.description))
            }
        case "cancel", "signal":
            guard let job = node["job"]?.stringValue else { return .failure(WireError("a \(type) command needs \"job\"")) }
            let attempt = node["attempt"]?.intValue
            if type == "signal" {
                guard let name = node["signal"]?.stringValue else { return .failure(WireError("a signal command needs \"signal\"")) }
                return .success(.signal(job: job, attempt: attempt, signal: name))
            }
            guard let r = node["reason"] else { return .success(.cancel(job: job, attempt: attempt, reason: .cancelled)) }
            guard let reason = r.stringValue.flatMap(CancelReason.init(rawValue:)) else {
                return .failure(WireError("unknown cancel reason \(r.jsonText); use \"cancelled\" or \"stale\""))
            }
            return .success(.cancel(job: job, attempt: attempt, reason: reason))
        case "lease":
            guard let l = node["lease"] else { return .failure(WireError("a lease command needs \"lease\"")) }
            return Lease.parse(l).map { .lease($0) }
        case "facts":
            guard let r = node["request"] else { return .failure(WireError("a facts command needs \"request\"")) }
            return FactsRequest.parse(r).map { .facts($0) }
        default:
            return .failure(WireError("unknown command type \"\(type)\"; use start, cancel, signal, lease or facts"))
        }
    }
}

/// The stdout and stderr of an ended attempt, carried in its end event when both are small.
public struct InlineOutput: Sendable, Equatable {
    public var stdout: [UInt8]
    public var stderr: [UInt8]

    public init(stdout: [UInt8], stderr: [UInt8]) {
        self.stdout = stdout
        self.stderr = stderr
    }

    /// `"output":{…}` members to append to an event object.
    public var member: String {
        "\"output\":{\"stdout\":\"\(Base64.encode(stdout))\",\"stderr\":\"\(Base64.encode(stderr))\"}"
    }

    /// The output carried by `event`, if any.
    public init?(event: JSONNode) {
        guard let o = event["output"], let out = o["stdout"]?.stringValue.flatMap(Base64.decode),
              let err = o["stderr"]?.stringValue.flatMap(Base64.decode) else { return nil }
        self.init(stdout: out, stderr: err)
    }
}

/// A line an agent sends up its link (`drover-agent link`).
public enum AgentMessage: Sendable {
    /// First line: who speaks.
    case hello(protocolVersion: Int, version: String, build: String)
    /// Everything logged before the link opened is out; N is the last sequence sent.
    case caughtUp(Int)
    /// The heartbeat file changed.
    case heartbeat(JSONNode)
    /// An event of the log, in sequence order.
    case event(seq: Int, JSONNode)
    /// The host's facts, answering a `facts` command.
    case facts(HostFactsReport)

    /// Reads a line; nil for one that is not a message (it is logged and skipped).
    public static func parse(_ line: String) -> AgentMessage? {
        guard let node = try? JSONParser.parse(Array(line.utf8)) else { return nil }
        if let s = node["seq"]?.intValue { return .event(seq: s, node) }
        if let hb = node["heartbeat"] { return .heartbeat(hb) }
        if let c = node["caught_up"] { return .caughtUp(c.intValue ?? Int.max) }
        if let f = node["facts"] { return .facts(HostFactsReport.parse(f)) }
        if let h = node["hello"], let p = h["protocol"]?.intValue {
            return .hello(protocolVersion: p, version: h["version"]?.stringValue ?? "?", build: h["build"]?.stringValue ?? "?")
        }
        return nil
    }

    /// The line for a hello.
    public static func helloLine(version: String, build: String) -> String {
        var h = JSONObject()
        h.set("protocol", WireProtocol.version)
        h.set("version", version)
        h.set("build", build)
        return "{\"hello\":" + h.text + "}"
    }
}
