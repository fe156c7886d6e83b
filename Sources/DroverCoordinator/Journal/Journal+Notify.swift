import DroverInventory
import Foundation

/// One notification to one target, as kept in the journal's outbox (`notifications`).
public struct NotificationRecord: Sendable {
    public var id: Int
    public var time: Double
    public var event: String
    public var payload: String
    public var target: NotifyTarget
    public var attempts: Int
    public var nextAt: Double
    /// `pending`, `delivered` or `failed` (given up).
    public var state: String
    public var lastError: String?
    public var deliveredAt: Double?
}

/// The notification outbox: written in the same transaction as what it reports, delivered
/// off the coordinator's actor, each delivery recorded.
extension Journal {
    /// Queues `payload` for each target (inside the caller's transaction).
    func enqueueNotification(_ event: NotifyEvent, payload: String, targets: [NotifyTarget], at time: Double) throws {
        for t in targets {
            let target = String(decoding: try JSONEncoder().encode(t), as: UTF8.self)
            try db.run("INSERT INTO notifications(time, event, payload, target, next_at) VALUES (?, ?, ?, ?, ?)",
                       .double(time), .text(event.rawValue), .text(payload), .text(target), .double(time))
        }
    }

    /// Pending notifications due at `time`, oldest first.
    func dueNotifications(at time: Double, limit: Int = 64) throws -> [NotificationRecord] {
        try db.query("SELECT * FROM notifications WHERE state='pending' AND next_at<=? ORDER BY id LIMIT ?", .double(time), .int(Int64(limit)))
            .compactMap(notification(from:))
    }

    /// When the next pending notification not in `excluding` (deliveries under way) is due, if any.
    func nextNotificationDue(excluding: Set<Int>) throws -> Double? {
        try db.query("SELECT id, next_at FROM notifications WHERE state='pending' ORDER BY next_at LIMIT ?", .int(Int64(excluding.count + 1)))
            .first { !excluding.contains($0.int("id") ?? 0) }?.double("next_at")
    }

    /// Records one delivery: done, to be tried again at `retryAt`, or given up (neither).
    func recordDelivery(_ id: Int, attempts: Int, error: String?, retryAt: Double?, at time: Double) throws {
        let state = error == nil ? "delivered" : (retryAt == nil ? "failed" : "pending")
        try db.run("UPDATE notifications SET attempts=?, state=?, last_error=?, next_at=?, delivered_at=? WHERE id=?",
                   .int(Int64(attempts)), .text(state), .from(error), .double(retryAt ?? time), error == nil ? .double(time) : .null, .int(Int64(id)))
    }

    /// Every notification, oldest first (for `drover events`-like views and tests).
    public func notifications() throws -> [NotificationRecord] {
        try db.query("SELECT * FROM notifications ORDER BY id").compactMap(notification(from:))
    }

    private func notification(from r: SQLRow) -> NotificationRecord? {
        guard let id = r.int("id"), let text = r.string("target"),
              let target = try? JSONDecoder().decode(NotifyTarget.self, from: Data(text.utf8)) else { return nil }
        return NotificationRecord(id: id, time: r.double("time") ?? 0, event: r.string("event") ?? "", payload: r.string("payload") ?? "{}",
                                  target: target, attempts: r.int("attempts") ?? 0, nextAt: r.double("next_at") ?? 0,
                                  state: r.string("state") ?? "pending", lastError: r.string("last_error"), deliveredAt: r.double("delivered_at"))
    }
}
