import DroverCore
import DroverInventory
import Foundation

/// Notifications (docs/inventory.md, "Notifications"): an event is queued in the journal's
/// outbox in the transaction that records what it reports, for the inventory's `notify`
/// targets and its batch's; each delivery runs on a thread of its own with its target's
/// timeout, so a hook that hangs or fails never holds the loop, and failed deliveries are
/// tried again with back-off. After a crash, pending ones are delivered again (at least once).
///
/// When the outbox must be looked at, and what is being delivered. Owned by `Coordinator+Notify`.
struct NotificationOutbox {
    /// When the outbox must be looked at again (Unix seconds; nil: nothing pending). 0 at
    /// start: deliveries a crash left pending go out at once.
    var due: Double? = 0
    /// Notifications being delivered now (by their row id).
    var delivering: Set<Int> = []

    /// Whether the loop must look at the outbox at `now`.
    func isDue(at now: Double) -> Bool { due.map { now >= $0 } ?? false }

    /// Whether nothing is pending or under way (the coordinator may exit when idle).
    var isIdle: Bool { due == nil && delivering.isEmpty }

    /// Something is due at `time` (at the latest).
    mutating func lookAgain(by time: Double) { due = min(due ?? time, time) }
}

extension Coordinator {
    /// Queues `event` for the targets that want it (inside the caller's transaction).
    func notify(_ event: NotifyEvent, batch: String? = nil, job: JobRecord? = nil, host: String? = nil, message: String,
                extra: (inout JSONObject) -> Void = { _ in }) throws {
        var targets = inventory.notify.filter { $0.wants(event) }
        if let batch, let record = try journal.batch(named: batch) { targets += record.notify.filter { $0.wants(event) } }
        guard !targets.isEmpty else { return }
        var o = JSONObject()
        o.set("event", event.rawValue)
        o.set("time", wallNow)
        o.set("coordinator", cid)
        o.set("batch", batch ?? job?.batch)
        o.set("job", job?.label)
        o.set("journal_id", job?.id)
        o.set("host", host ?? job?.host)
        o.set("message", message)
        extra(&o)
        try journal.enqueueNotification(event, payload: o.text, targets: targets, at: wallNow)
        try journal.audit("notify", job: job?.id, host: host, state: "queued", "\(event.rawValue) queued for \(targets.map(\.label).joined(separator: ", "))")
        notifications.due = wallNow
    }

    /// `job_failed`, with how the job ended.
    func notifyFailed(_ job: JobRecord, reason: String, exitCode: Int?, signal: String?) throws {
        try notify(.jobFailed, batch: job.batch, job: job, message: "job \(job.label) failed: \(reason)") { o in
            o.set("reason", reason)
            o.set("exit_code", exitCode)
            o.set("signal", signal)
            o.set("compensates", job.compensates)
        }
    }

    /// Starts the deliveries that are due (each on its own thread); returns when the next is due.
    func deliverNotifications() throws -> Double? {
        for n in try journal.dueNotifications(at: wallNow) where notifications.delivering.insert(n.id).inserted {
            let coordinator = self
            let thread = Thread {
                let error = NotifyDelivery.deliver(n.payload, event: n.event, to: n.target)
                Task { await coordinator.delivered(n, error: error) }
            }
            thread.name = "drover-notify-\(n.id)"
            thread.start()
        }
        return try journal.nextNotificationDue(excluding: notifications.delivering)
    }

    /// Records a delivery's outcome (and when to try again).
    func delivered(_ n: NotificationRecord, error: String?) {
        notifications.delivering.remove(n.id)
        let attempt = n.attempts + 1
        let retryAt = error != nil && attempt < n.target.attempts ? wallNow + NotifyDelivery.backOff(afterAttempt: attempt) : nil
        do {
            try journal.db.transaction {
                try journal.recordDelivery(n.id, attempts: attempt, error: error, retryAt: retryAt, at: wallNow)
                let text: String
                if let error {
                    text = "\(n.event) to \(n.target.label): delivery \(attempt) of \(n.target.attempts) failed: \(error)"
                        + (retryAt.map { "; again in \(String(format: "%.0f", $0 - wallNow)) s" } ?? "; given up")
                } else {
                    text = "\(n.event) delivered to \(n.target.label) (delivery \(attempt))"
                }
                try journal.audit("notify", state: error == nil ? "delivered" : (retryAt == nil ? "failed" : "retry"), text)
            }
        } catch {
            log("notify: cannot record a delivery: \(error)")
        }
        if error != nil { log("warning: notification \(n.id) (\(n.event)) to \(n.target.label): \(error!)") }
        notifications.lookAgain(by: retryAt ?? wallNow)
        doorbell.ring()
    }
}
