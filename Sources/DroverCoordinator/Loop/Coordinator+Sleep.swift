import Foundation

extension Coordinator {
    /// Every host gets at least this long after the coordinator wakes to report before it
    /// can be judged (or `--dead-after`, when longer).
    static let wakeGrace = 10.0

    /// Called at the loop's checkpoints: when the coordinator did not run for a while (it
    /// slept, was stopped), the hosts' silence in that time is its own. Every host not already
    /// down gets its clock restarted, with at least `wakeGrace` seconds to deliver its backlog
    /// and heartbeats over its link (reconnecting if the link died meanwhile) before it can be
    /// suspect or down, so no job is re-run because the coordinator slept. The gap is recorded
    /// in the log and as a `coordinator` event.
    func checkForSleep() {
        guard let gap = sleepDetector?.check(monotonic: now, wall: wallNow) else { return }
        let grace = max(0, Self.wakeGrace - settings.deadAfter)
        let excused = roster.excuse(inventory.hosts.map(\.name), at: now, grace: grace)
        agenda.hosts = true
        let message = "the coordinator did not run for \(String(format: "%.1f", gap.seconds)) s (\(gap.cause.rawValue): asleep or stopped); "
            + "hosts \(excused.isEmpty ? "(none)" : excused.joined(separator: ", ")) get \(Int(settings.deadAfter + grace)) s to report before any is judged"
        log("warning: \(message)")
        do { try journal.audit("coordinator", message) } catch { log("journal: cannot record the sleep: \(error)") }
    }
}
