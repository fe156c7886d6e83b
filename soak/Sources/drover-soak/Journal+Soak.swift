import DroverCoordinator
import DroverCore

/// The few reads of the coordinator's journal the fault injector needs to wait for a fault's
/// precondition and to see its effect (read-only; the journal module's own API where it has one).
extension Journal {
    /// The coordinator's view of `host` (`up`, `suspect`, `down`, …), nil when unknown.
    func soakHostState(_ host: String) -> String? {
        (try? db.query("SELECT state FROM hosts WHERE name=?", .text(host)))?.first?.string("state")
    }

    /// Whether `host` is quarantined by the breaker now.
    func soakQuarantined(_ host: String) -> Bool {
        ((try? quarantines()) ?? []).contains { $0.host == host && $0.isQuarantined }
    }

    /// The states `host` went to (audit `host` events) since `time` (Unix seconds).
    func soakHostStates(_ host: String, since time: Double) -> [String] {
        ((try? db.query("SELECT state FROM events WHERE kind='host' AND host=? AND time>=? ORDER BY id", .text(host), .double(time))) ?? [])
            .compactMap { $0.string("state") }
    }

    /// Attempts on `host` that exited 127 (`not found`) and ended since `time`.
    func soakToolFailures(_ host: String, since time: Double) -> Int {
        (try? db.query("SELECT COUNT(*) AS n FROM attempts WHERE host=? AND agent_state='exited' AND exit_code=127 AND ended_at>=?",
                       .text(host), .double(time)))?.first?.int("n") ?? 0
    }

    /// Whether attempt of `job` runs on `host` now (started there, not ended).
    func soakRuns(_ job: Int, on host: String) -> Bool {
        ((try? attempts(of: job)) ?? []).contains { $0.host == host && $0.startedAt != nil && $0.endedAt == nil && !$0.stale }
    }

    /// The `lease_expired` audit events of `host` since `time`: their messages.
    func soakLeaseExpiries(_ host: String, since time: Double) -> [String] {
        ((try? db.query("SELECT message FROM events WHERE kind='lease_expired' AND host=? AND time>=? ORDER BY id", .text(host), .double(time))) ?? [])
            .compactMap { $0.string("message") }
    }
}
