import DroverCore
import DroverInventory
import DroverProtocol
import DroverSSH
import Foundation

/// What a host link reports to the coordinator.
protocol HostLinkDelegate: Actor {
    /// The last agent event sequence applied for `host` (the stream resumes after it).
    func lastAppliedSeq(_ host: String) -> Int
    /// The highest agent event sequence of `host` applied, committed and with every result it
    /// asked for fetched: sent with the lease, it lets the agent's retention remove what is collected.
    func collectedSeq(_ host: String) -> Int
    /// The link is connected and this build of the agent runs.
    func linkUp(_ host: String, deploy: DeployReport)
    /// Lines from the agent's `tail --follow --heartbeat`.
    func receive(_ host: String, lines: [String])
    /// The connection or the stream ended; the link will reconnect.
    func linkDown(_ host: String, error: String)
    /// The host's key is not the one known_hosts records (changed, unknown or revoked): the link
    /// does not connect, and only tries again (reading known_hosts anew) every `HostLink.untrustedRetry` seconds.
    func linkUntrusted(_ host: String, error: SSHError)
    /// Inputs of an attempt could not be placed on the host; its start was not sent.
    func stagingFailed(_ host: String, job: Int, attempt: Int, error: String)
    /// Input files were uploaded to the host's store.
    func staged(_ host: String, files: [StagedFile], bytes: Int)
    /// An attempt's results were fetched (or not).
    func collected(_ host: String, job: Int, attempt: Int, outcome: HostLink.CollectOutcome)
    /// A snapshot's files were pulled into the coordinator's store (`error` nil), or not.
    func pulledCheckpoint(_ host: String, pull: CheckpointPull, error: String?)
    /// Something the coordinator loop acts on was recorded: wake it.
    nonisolated func workArrived()
}

/// One host's connection: keeps an SSH session, makes sure the agent runs, and keeps one
/// long-lived two-way channel to it (`drover-agent link`): commands and lease renewals go
/// down its stdin, events, heartbeats and small results come up its stdout. Reconnects on
/// its own after any failure.
///
/// Sendable: every mutable part is behind a `Locked` (its state, its tasks).
final class HostLink: Sendable {
    struct Lease: Sendable {
        var coordinator: String
        var epoch: Int
        var ttl: Double
        /// The heartbeat interval asked of the agent (`HeartbeatCadence`).
        var beat: Double
    }

    /// An attempt's results to fetch: stdout, stderr and, after success, its outputs.
    struct Collection: Sendable {
        var job: Int
        var attempt: Int
        var attemptDirectory: String
        var workdir: String
        var outputs: [String]
        /// The local folder (`results/<batch>/<job>`).
        var destination: String
    }

    enum CollectOutcome: Sendable {
        case done(files: Int, bytes: Int)
        case missingOutputs(String)
        case failed(String)
    }

    /// A command waiting to be sent, with the files that must be on the host first.
    struct Outgoing: Sendable {
        var line: String
        var files: [StagedFile] = []
        var job: Int = 0
        var attempt: Int = 0
    }

    struct State {
        var session: (any HostSession)?
        var agentPath: String?
        var pending: [Outgoing] = []
        var collections: [Collection] = []
        /// Snapshots to pull into the coordinator's store (docs/checkpoints.md).
        var pulls: [CheckpointPull] = []
        /// Hashes known to be in the host's store (this session).
        var stored: Set<String> = []
        var stream: HostStream?
        /// The link's stdin: commands and lease renewals go down it.
        var input: StreamInput?
        var stopping = false
        var leaseDue = true
    }

    let spec: HostSpec
    let deployer: Deployer
    let lease: Lease
    let delegate: any HostLinkDelegate
    let state = Locked(State())
    let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    let collectWake: AsyncStream<Void>.Continuation
    let collectWakes: AsyncStream<Void>
    private let tasks = Locked<[Task<Void, Never>]>([])
    let log: @Sendable (String) -> Void

    init(spec: HostSpec, deployer: Deployer, lease: Lease, delegate: any HostLinkDelegate, log: @escaping @Sendable (String) -> Void) {
        self.spec = spec
        self.deployer = deployer
        self.lease = lease
        self.delegate = delegate
        self.log = log
        (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        (collectWakes, collectWake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func start() {
        let started = [
            Task { await self.connectionLoop() },
            Task { await self.senderLoop() },
            Task { await self.leaseLoop() },
            Task { await self.collectLoop() },
        ]
        tasks.withLock { $0 += started }
    }

    /// Stops the link and closes its session.
    func stop() async {
        let (session, stream) = state.withLock { s -> ((any HostSession)?, HostStream?) in
            s.stopping = true
            return (s.session, s.stream)
        }
        stream?.cancel()
        wake.finish()
        collectWake.finish()
        let running = tasks.withLock { $0 }
        for t in running { t.cancel() }
        if let session { await session.shutdown() }
        for t in running { await t.value }
    }

    /// Drops the current connection (the loop reconnects and re-checks the agent).
    func restart() {
        let stream = state.withLock { $0.stream }
        stream?.cancel()
    }

    /// Queues inbox commands (JSON lines) to send as soon as the host is connected.
    func send(_ lines: [String]) {
        guard !lines.isEmpty else { return }
        state.withLock { $0.pending += lines.map { Outgoing(line: $0) } }
        wake.yield()
    }

    /// Queues a start command; its input files are put in the host's store before it is sent.
    func send(_ start: Outgoing) {
        state.withLock { $0.pending.append(start) }
        wake.yield()
    }

    /// Queues the fetching of an attempt's results (done while the host is connected).
    func collect(_ c: Collection) {
        state.withLock { $0.collections.append(c) }
        collectWake.yield()
    }

    var stopping: Bool { state.withLock { $0.stopping } }

    // MARK: Connection and event stream

    private func connectionLoop() async {
        var backoff = 0.5
        // The last "cannot speak to this agent" said, and of which build, so that retries
        // with the same agent do not say "connected" and the same error again.
        var incompatible: (why: String, build: String?)?
        while !stopping {
            do throws(SSHError) {
                let session = try await spec.openSession(options: SSHOptions())
                state.withLock { $0.session = session }
                let report: DeployReport
                do throws(SSHError) {
                    report = try await deployer.ensure(spec, session: session)
                } catch {
                    state.withLock { $0.session = nil }
                    await session.shutdown()
                    throw error
                }
                let agent = Deployer.agentPath(root: spec.root, build: report.build ?? "")
                state.withLock {
                    $0.agentPath = agent
                    $0.leaseDue = true
                    $0.stored = []
                }
                let quiet = incompatible != nil && incompatible?.build == report.build
                if !quiet { await delegate.linkUp(spec.name, deploy: report) }
                wake.yield()
                collectWake.yield()
                let from = await delegate.lastAppliedSeq(spec.name) + 1
                let q = RemotePath.shell
                let input = StreamInput()
                let stream = try session.stream("\(q(agent)) link --root \(q(spec.root)) --from \(from) --protocol \(WireProtocol.version)\(Self.retentionOptions(spec.retention))", input: input)
                state.withLock {
                    $0.stream = stream
                    $0.input = input
                    $0.leaseDue = true
                    // The host's facts (docs/inventory.md#facts), collected at each connect.
                    $0.pending.insert(Outgoing(line: AgentCommand.facts(FactsRequest(commands: spec.facts)).line), at: 0)
                }
                wake.yield()
                let delegate = self.delegate
                let name = spec.name
                let announce: (@Sendable () async -> Void)? = quiet ? { @Sendable in await delegate.linkUp(name, deploy: report) } : nil
                let end = await pump(stream, onGreeting: announce)
                state.withLock {
                    $0.session = nil
                    $0.stream = nil
                    $0.input = nil
                    $0.pending.removeAll()
                    $0.collections.removeAll()
                }
                await session.shutdown()
                if stopping { break }
                if end.greeted {
                    // A link that worked: the next connect comes soon, and may say anything again.
                    backoff = 0.5
                    incompatible = nil
                } else if let why = LinkEnd.incompatibility(end, host: spec.name, build: report.build) {
                    // The same answer every time until someone installs a matching agent:
                    // say it once, and try again only now and then.
                    if why != incompatible?.why { await delegate.linkDown(spec.name, error: why) }
                    incompatible = (why, report.build)
                    try? await Task.sleep(for: .seconds(Self.incompatibleRetry))
                    continue
                }
                await delegate.linkDown(spec.name, error: end.reason)
            } catch {
                if stopping { break }
                if Self.isTrustFailure(error) {
                    // Never connect on another key: wait for the user to fix known_hosts.
                    await delegate.linkUntrusted(spec.name, error: error)
                    try? await Task.sleep(for: .seconds(Self.untrustedRetry))
                    continue
                }
                await delegate.linkDown(spec.name, error: error.description)
            }
            if stopping { break }
            try? await Task.sleep(for: .seconds(backoff))
            backoff = min(backoff * 2, 5)
        }
    }

    /// Seconds between connection attempts to a host whose key is not trusted.
    static let untrustedRetry = 10.0

    /// Seconds between connection attempts to a host whose agent cannot speak to this drover.
    static let incompatibleRetry = 30.0

    /// How often the lease is renewed: a third of its ttl, at most every 10 s, so a job's own
    /// shorter lease (30 s at least) never runs out while the coordinator is alive.
    static func renewInterval(ttl: Double) -> Double { min(max(ttl / 3, 0.5), 10) }

    /// Whether a connect failed because the host's key is not trusted (as opposed to a host
    /// that is down or unreachable).
    static func isTrustFailure(_ error: SSHError) -> Bool {
        [.hostKeyMismatch, .unknownHostKey, .revokedHostKey].contains(error.kind)
    }

    /// Reads the stream line by line until it ends; returns why it ended.
    /// `onGreeting` runs once the agent said hello (a link that was not announced as up yet).
    private func pump(_ stream: HostStream, onGreeting: (@Sendable () async -> Void)? = nil) async -> LinkEnd {
        var partial: [UInt8] = []
        var stderr = ""
        var greeted = false
        do {
            for try await event in stream {
                switch event {
                case .stdout(let bytes):
                    partial += bytes
                    guard let last = partial.lastIndex(of: UInt8(ascii: "\n")) else { continue }
                    let text = String(decoding: partial[...last], as: UTF8.self)
                    partial.removeSubrange(...last)
                    var lines = text.split(separator: "\n").map(String.init)
                    if !greeted, let first = lines.first {
                        // The first line says which protocol the agent speaks.
                        guard case .hello(let version, let agentVersion, let build)? = AgentMessage.parse(first) else {
                            return LinkEnd(reason: "the agent did not start its link (it printed: \(first.prefix(200)))")
                        }
                        guard version == WireProtocol.version else {
                            return LinkEnd(reason: "the agent on \(spec.name) (\(agentVersion), build \(build)) speaks protocol \(version) and this drover speaks \(WireProtocol.version); refusing it (`drover deploy` replaces it)",
                                           agentProtocol: version)
                        }
                        greeted = true
                        await onGreeting?()
                        lines.removeFirst()
                    }
                    if !lines.isEmpty { await delegate.receive(spec.name, lines: lines) }
                case .stderr(let bytes):
                    stderr += String(decoding: bytes, as: UTF8.self)
                    if stderr.count > 4000 { stderr = String(stderr.suffix(2000)) }
                case .exit(let status):
                    let detail = stderr.trimmingCharacters(in: .whitespacesAndNewlines)
                    return LinkEnd(reason: "the agent's event stream ended (\(status))\(detail.isEmpty ? "" : ": \(detail)")", greeted: greeted,
                                   stderr: detail)
                }
            }
            return LinkEnd(reason: "the agent's event stream closed", greeted: greeted)
        } catch is CancellationError {
            return LinkEnd(reason: "the event stream was restarted", greeted: greeted)
        } catch {
            return LinkEnd(reason: "\(error)", greeted: greeted)
        }
    }

    // MARK: Commands and lease

    /// Writes queued commands (once their input files are on the host) and lease renewals
    /// down the link. A command lost with a broken link is resent by reconciliation after
    /// the reconnect (the agent reports what it accepted; starts are idempotent by attempt).
    private func senderLoop() async {
        for await _ in wakes {
            while true {
                let (session, input, batch, leaseDue) = state.withLock { s -> ((any HostSession)?, StreamInput?, [Outgoing], Bool) in
                    guard s.session != nil, let input = s.input else { return (nil, nil, [], false) }
                    defer {
                        s.pending.removeAll()
                        s.leaseDue = false
                    }
                    return (s.session, input, s.pending, s.leaseDue)
                }
                guard let session, let input, !(batch.isEmpty && !leaseDue) else { break }
                var lines = batch.contains { !$0.files.isEmpty } ? await stage(batch, session: session) : batch.map(\.line)
                if leaseDue {
                    // Each coordinator has its own lease file (`leases/<id>`), so coordinators
                    // sharing an agent never renew, or let expire, each other's leases.
                    // `collected` tells the agent which of this coordinator's results it may remove (retention).
                    let collected = await delegate.collectedSeq(spec.name)
                    let l = DroverProtocol.Lease(coordinator: lease.coordinator, epoch: lease.epoch, time: Date().timeIntervalSince1970, ttl: lease.ttl,
                                                 collected: collected, beat: lease.beat)
                    lines.insert(AgentCommand.lease(l).line, at: 0)
                }
                if !lines.isEmpty { input.write(Array((lines.joined(separator: "\n") + "\n").utf8)) }
            }
        }
    }

    /// Puts unsent commands back (first in line) while the same session is still in use, and
    /// retries a second later; after a reconnect, reconciliation resends what is still needed.
    func requeue(_ items: [Outgoing], for session: any HostSession) {
        guard !items.isEmpty else { return }
        let same = state.withLock { s -> Bool in
            guard let current = s.session, current as AnyObject === session as AnyObject else { return false }
            s.pending = items + s.pending
            return true
        }
        if same {
            Task {
                try? await Task.sleep(for: .seconds(1))
                self.wake.yield()
            }
        }
    }

    /// The inventory's retention for the host, as `link` options (numbers only: nothing to quote).
    static func retentionOptions(_ policy: RetentionPolicy) -> String {
        var text = " --keep \(Int(policy.keep.rounded())) --segment-size \(policy.segmentSize)"
        text += " --max-size " + (policy.maxSize.map { String($0) } ?? "default")
        return text
    }

    private func leaseLoop() async {
        while !stopping {
            try? await Task.sleep(for: .seconds(Self.renewInterval(ttl: lease.ttl)))
            state.withLock { $0.leaseDue = true }
            wake.yield()
        }
    }
}
