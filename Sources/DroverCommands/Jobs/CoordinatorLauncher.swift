import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// Starts `drover coordinator` detached when none runs for a state directory.
enum CoordinatorLauncher {
    /// Makes sure a coordinator runs; returns its pid.
    @discardableResult
    static func ensureRunning(state: StateLocation, inventory: Inventory) throws -> Int32 {
        if let pid = state.runningCoordinator() { return pid }
        try? state.prepare()
        let executable = CommandLine.executablePath
        var argv = [executable, "coordinator", "--state", state.path, "--idle-exit", "600"]
        if case .file(let path) = inventory.source { argv += ["--inventory", path] }
        let pid: pid_t
        do {
            pid = try ChildProcess.startDetached(argv, output: state.logPath)
        } catch {
            Terminal.error("cannot start the coordinator: \(error)")
            throw ExitCode(1)
        }
        // Wait (briefly) until it holds the lock, so the next command sees it running.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let running = state.runningCoordinator() { return running }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                // It exited: another one may have won the race for the lock.
                if let running = state.runningCoordinator() { return running }
                Terminal.error("the coordinator exited at once; see \(state.logPath)")
                throw ExitCode(1)
            }
            usleep(5000)
        }
        Terminal.error("the coordinator did not start within 10 s; see \(state.logPath)")
        throw ExitCode(1)
    }
}

extension CommandLine {
    /// The absolute path of this executable (/proc/self/exe on Linux).
    static var executablePath: String {
        #if os(Linux)
        if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return p }
        #endif
        let a = arguments[0]
        return a.hasPrefix("/") ? a : FileManager.default.currentDirectoryPath + "/" + a
    }
}
