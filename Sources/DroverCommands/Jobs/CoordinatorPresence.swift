import ArgumentParser
import DroverCoordinator
import DroverInventory
import Foundation

/// `--no-start`, for the commands that read the journal and would otherwise start the coordinator.
struct CoordinatorStartOptions: ParsableArguments {
    @Flag(name: .long, help: "When no coordinator runs and jobs are unfinished, do not start one: say so, and how old the states shown are.")
    var noStart = false
}

/// What `ps`, `status`, `wait`, `logs --follow` and `events --follow` do when the journal has
/// unfinished jobs but no coordinator runs (it crashed, was killed, its machine rebooted):
/// start it, as `run` and `submit` do, so the states shown move again; or, with `--no-start`,
/// say on stderr that none runs and how old the states shown are.
enum CoordinatorPresence {
    /// `inventory`: the command's `--inventory`, else the one the last coordinator used (from
    /// the journal), else the default search.
    static func ensure(_ journal: Journal, inventory explicit: String?, noStart: Bool) throws {
        let state = journal.state
        guard state.runningCoordinator() == nil, try journal.hasOpenJobs() else { return }
        if noStart {
            Terminal.note(staleNote(journal))
            return
        }
        let inventory: Inventory
        do {
            inventory = try InventoryLoader(explicitPath: explicit ?? lastInventory(journal)).load()
        } catch {
            Terminal.error("no coordinator runs for \(state.path) and it cannot be started: \(error.description)")
            Terminal.note(staleNote(journal))
            return
        }
        Terminal.note("no coordinator ran for \(state.path) though jobs are unfinished; starting it (log: \(state.logPath))\(age(journal).map { "; until it has caught up with its hosts, the states shown are as of \($0) ago" } ?? "")")
        try CoordinatorLauncher.ensureRunning(state: state, inventory: inventory)
    }

    /// The inventory file the last coordinator of this journal used, if it still exists.
    static func lastInventory(_ journal: Journal) -> String? {
        guard let path = try? journal.meta("inventory"), path.hasPrefix("/") || path.hasPrefix("."),
              FileManager.default.fileExists(atPath: path) else { return nil }
        return path
    }

    /// How long ago the newest event was recorded: "40 s", "12 min", "3.5 h".
    static func age(_ journal: Journal) -> String? {
        guard let t = try? journal.lastEventTime() else { return nil }
        let age = max(0, Date().timeIntervalSince1970 - t)
        if age < 120 { return "\(Int(age)) s" }
        if age < 7200 { return "\(Int(age / 60)) min" }
        return String(format: "%.1f h", age / 3600)
    }

    /// "no coordinator runs …; the states shown are as of …".
    static func staleNote(_ journal: Journal) -> String {
        var note = "no coordinator runs for \(journal.state.path): unfinished jobs do not advance, and the states shown"
        if let t = try? journal.lastEventTime(), let age = age(journal) {
            let f = DateFormatter()
            f.dateFormat = "yyyy-MM-dd HH:mm:ss"
            note += " are as of its last record, \(age) ago (\(f.string(from: Date(timeIntervalSince1970: t))))"
        }
        return note + "; jobs shown running may have ended. Start it with `drover coordinator` (or leave out --no-start)."
    }
}
