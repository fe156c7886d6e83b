import DroverCore
import DroverProtocol
import Foundation

/// What the journal has of the hosts' heartbeats. Liveness takes every beat (in memory,
/// `HostRoster`); the journal gets a beat that says something new at once, and the routine
/// beats of `up` hosts (only their time and sequence change) every host's together, one
/// transaction every `recordInterval` (`flushBeats`), or with the host's next events.
struct HeartbeatLog {
    /// The journal records the routine heartbeats of `up` hosts this often (seconds):
    /// `drover hosts` shows their age.
    static let recordInterval = 5.0
    /// When each host's heartbeat was last written to the journal, and what it said (`key`).
    var recorded: [String: (at: Double, key: String)] = [:]
    /// Routine beats not written yet (the newest of each host).
    var pending: [String: Journal.Beat] = [:]
    /// When the pending beats will be written (monotonic seconds).
    var flushAt: Double?

    /// What of a beat, when it changes, is worth writing at once.
    static func key(_ hb: JSONNode) -> String {
        ["version", "build", "cpus", "machine_id"].map { hb[$0]?.jsonText ?? "" }.joined(separator: "|") + "|\(hb["coordinators"]?.arrayValue?.count ?? -1)"
    }

    /// Whether a beat (its `key`) of a host that is `up` says nothing new.
    func isRoutine(_ host: String, key: String, hostUp: Bool) -> Bool {
        hostUp && recorded[host]?.key == key
    }

    /// Keeps a routine beat until the next flush (due `recordInterval` after the first one held).
    mutating func hold(_ beat: Journal.Beat, host: String, at now: Double) {
        pending[host] = beat
        if flushAt == nil { flushAt = now + Self.recordInterval }
    }

    /// The host's beat (`key`) was written to the journal at `now`.
    mutating func wrote(_ host: String, key: String, at now: Double) {
        recorded[host] = (now, key)
        pending[host] = nil
    }
}

extension Coordinator {
    /// What a heartbeat line says, as the journal records it.
    func beat(_ hb: JSONNode, host: String) -> Journal.Beat {
        Journal.Beat(time: hb["time"]?.doubleValue, seq: hb["seq"]?.intValue, version: hb["version"]?.stringValue,
                     build: hb["build"]?.stringValue, slots: inventory.host(named: host)?.slots ?? hb["cpus"]?.intValue,
                     machineID: hb["machine_id"]?.stringValue, coordinators: hb["coordinators"]?.arrayValue?.count,
                     load: HostLoad(heartbeat: hb))
    }

    /// Writes the routine beats received since the last flush, every host's in one transaction.
    func flushBeats() {
        beats.flushAt = nil
        recordHeap()
        guard !beats.pending.isEmpty else { return }
        let pending = beats.pending
        do {
            try journal.db.transaction {
                for (host, b) in pending { try journal.recordHeartbeat(host, b) }
            }
            beats.pending.removeAll()
        } catch {
            log("journal: recording heartbeats: \(error)")
            beats.flushAt = now + HeartbeatLog.recordInterval
        }
    }
}

extension Coordinator {
    /// Writes `coordinator.heap` (the live heap, and SQLite's part of it, for a soak or an
    /// operator to follow a leak by) with the routine heartbeats, so every
    /// `HeartbeatLog.recordInterval` while hosts beat; no timer of its own. Not durable: a
    /// figure of the moment.
    func recordHeap() {
        guard let bytes = FreeMemory.heapInUse() else { return }
        var o = JSONObject()
        o.set("pid", getpid())
        o.set("time", Date().timeIntervalSince1970)
        o.set("heap_in_use", bytes)
        o.set("sqlite", SQLiteDatabase.memoryInUse)
        try? AtomicFile.write(Array((o.text + "\n").utf8), to: journal.state.heapPath, durable: false)
    }
}
