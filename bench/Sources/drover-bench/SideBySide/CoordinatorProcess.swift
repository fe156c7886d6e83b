import DroverCoordinator
import DroverCore
import Foundation

/// A real `drover coordinator` on a fresh state directory, started detached as users start it.
final class CoordinatorProcess {
    let drover: String
    let inventory: String
    let state: String
    let pid: pid_t

    /// `options`: more options of `drover coordinator`, such as `--dead-after 3`.
    init(drover: String, inventory: String, agent: String, options: [String] = []) throws {
        self.drover = drover
        self.inventory = inventory
        state = NSTemporaryDirectory() + "drover-bench-state-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try StateLocation(explicit: state).prepare()
        do {
            pid = try ChildProcess.startDetached([drover, "coordinator", "--state", state, "--inventory", inventory, "--agent", agent] + options, output: state + "/coordinator.log")
        } catch {
            throw BenchFailure("cannot start the coordinator: \(error)")
        }
    }

    func journal() throws -> Journal { try Journal(StateLocation(explicit: state)) }

    /// Waits until `count` hosts are up.
    func waitUp(_ count: Int, timeout: Double = 120) throws {
        let j = try journal()
        try waitFor("\(count) hosts up", timeout: timeout) { try j.hosts().filter { $0.state == "up" }.count >= count }
    }

    /// Runs a drover subcommand (first element) against this coordinator's state and inventory.
    func command(_ args: [String], timeout: Double = 1800) throws -> ChildProcess.Outcome {
        try ChildProcess.run([drover, args[0], "--state", state, "--inventory", inventory] + args.dropFirst(), timeout: timeout)
    }

    /// User + system CPU seconds of the coordinator so far, its reaped children included.
    func cpuSeconds() -> Double { processCPU(pid, children: true) }

    /// Stops the coordinator and every job it runs, and deletes its state.
    func stop() {
        _ = try? command(["down", "--kill-jobs"], timeout: 120)
        _ = reap(pid, timeout: 30)
        _ = try? ChildProcess.run(["/bin/rm", "-rf", state])
    }
}

extension Journal {
    /// Every audit event after `id` (`events(after:)` returns at most 10,000 at a time).
    func allEvents(after id: Int = 0) throws -> [AuditEvent] {
        var out: [AuditEvent] = []
        var cursor = id
        while true {
            let page = try events(after: cursor)
            guard let last = page.last else { return out }
            out += page
            cursor = last.id
        }
    }

    /// The id of the newest audit event (0 if none).
    func lastEventID() throws -> Int {
        var cursor = 0
        while let last = try events(after: cursor).last { cursor = last.id }
        return cursor
    }
}
