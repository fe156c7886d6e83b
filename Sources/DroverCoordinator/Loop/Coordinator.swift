import DroverCore
import DroverProtocol
import DroverInventory
import DroverSSH
import Foundation
import Logging

/// Settings of the coordinator loop (`drover coordinator --help` documents each).
public struct CoordinatorSettings: Sendable {
    /// Seconds without a heartbeat before a host is `down` and its jobs are re-run elsewhere.
    public var deadAfter: Double = 10
    /// Seconds an agent keeps its jobs without hearing from this coordinator (a job's own
    /// `lease` overrides it for that job): hours, so a coordinator that sleeps loses nothing.
    public var leaseTTL: Double = CoordinatorSettings.defaultLease
    /// The default lease: 6 hours (HTCondor's job lease, 40 minutes, is the floor).
    public static let defaultLease: Double = 6 * 3600
    /// The shortest lease a job may ask for (the coordinator renews at most every 10 s).
    public static let minimumJobLease: Double = 30
    public var stalePolicy: StalePolicy = .killStale
    /// Exit after this many seconds with no unfinished job (nil: run until stopped).
    public var idleExit: Double?
    /// The longest the loop sleeps without a ring or a deadline: a safety net only, since
    /// commits, events and links ring it (seconds).
    public var safetyWake: Double = 5
    /// When a host is quarantined as a black hole (nil: never); the inventory's
    /// `defaults.quarantine` unless the command line says otherwise.
    public var quarantine: QuarantineSettings? = QuarantineSettings()
    /// The settings with where each came from (JSON), recorded in the journal's meta
    /// `settings` when the loop starts, for `drover config`.
    public var record: String?

    public init() {}
}

/// The coordinator: one loop per state directory that places queued jobs on hosts, applies
/// every agent event to the journal exactly once, watches heartbeats, re-runs the jobs of
/// dead hosts, and reconciles with hosts that come back.
///
/// Every decision is committed to the journal before the command that acts on it is sent.
public actor Coordinator: HostLinkDelegate {
    let journal: Journal
    let inventory: Inventory
    let settings: CoordinatorSettings
    let deployer: Deployer
    let cid: String
    var epoch = 0
    let started = ContinuousClock.now
    /// The coordinator's log (swift-log; `CoordinatorLogHandler` writes `coordinator.log`).
    let logger: Logger
    /// One line in the log; "warning: …" lines at warning level.
    let log: @Sendable (String) -> Void

    // The state of each concern, owned by the file named (the loop itself: `Coordinator+Loop`).

    /// Rung by whatever has work for the loop; it sleeps until then or its next deadline.
    let doorbell = Doorbell()
    var stopRequested = false
    /// What the loop has to look at next (`Coordinator+Loop`).
    var agenda = LoopAgenda()
    /// Each host's link, liveness, state and identity (`Coordinator+Hosts`).
    var roster = HostRoster()
    /// The hosts' heartbeats as the journal has them, and the routine ones not written yet (`Coordinator+Heartbeats`).
    var beats = HeartbeatLog()
    /// Cancels sent to the hosts (`Coordinator+Dispatch`).
    var dispatch = DispatchLedger()
    /// Results of ended attempts being fetched (`Coordinator+Results`).
    var results = ResultCollection()
    /// Hashes of local files staged as inputs (`Coordinator+Staging`).
    var hashes = InputHashes()
    /// Snapshots being pulled into the store (`Coordinator+Checkpoints`).
    var checkpoints = CheckpointPulls()
    /// When the approval gates are looked at again (`Coordinator+Approvals`).
    var approvals = ApprovalClock()
    /// The notification outbox's next look and deliveries under way (`Coordinator+Notify`).
    var notifications = NotificationOutbox()
    /// Each host's facts as its agent last reported them (`Coordinator+Facts`); nil until read from the journal.
    var facts: [String: HostFactsReport]?
    /// Notices when the coordinator itself did not run (its machine slept, SIGSTOP; `Coordinator+Sleep`).
    var sleepDetector: SleepDetector?
    /// Each host's circuit breaker and the verdicts that wait (`Coordinator+Quarantine`).
    var breakers = BreakerBoard()

    /// Opens the journal in `state`; the caller holds the coordinator lock.
    public init(state: StateLocation, inventory: Inventory, catalog: AgentCatalog, settings: CoordinatorSettings,
                logger: Logger = Logger(label: "drover.coordinator")) throws {
        journal = try Journal(state, ringsCoordinator: false)
        cid = try journal.coordinatorID()
        self.inventory = inventory
        self.settings = settings
        self.deployer = Deployer(catalog: catalog)
        self.logger = logger
        log = { message in
            if message.hasPrefix("warning: ") {
                logger.warning("\(message.dropFirst(9))")
            } else {
                logger.info("\(message)")
            }
        }
    }

    var now: Double {
        let d = ContinuousClock.now - started
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    var wallNow: Double { Date().timeIntervalSince1970 }

    /// Asks the loop to stop (from a signal handler task).
    public func stop() {
        stopRequested = true
        doorbell.ring()
    }

    /// Something the loop acts on was recorded (results collected, a staging failure).
    nonisolated func workArrived() { doorbell.ring() }
}
