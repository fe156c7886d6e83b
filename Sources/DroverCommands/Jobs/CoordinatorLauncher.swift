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
        try SettingsSources.check(inventory: inventory)
        try? state.prepare()
        let executable = CommandLine.executablePath
        // No settings on its command line: it reads them where the user wrote them (the
        // environment it inherits, the inventory, config.json), as `drover config` shows.
        var argv = [executable, "coordinator", "--state", state.path, "--on-demand"]
        if case .file(let path) = inventory.source { argv += ["--inventory", path] }
        let pid: pid_t
        do {
            pid = try ChildProcess.startDetached(argv, output: state.logPath)
        } catch {
            Terminal.error("cannot start the coordinator: \(error)")
            throw ExitCode(1)
        }
        // Wait (briefly) until it holds the lock, so the next command sees it running. Taking
        // the lock writes its pid into the lock file, which wakes the watch (the folder's on
        // Linux, the file's with kqueue once it exists); its exit makes no file event, so the
        // child is looked at every `exitCheck` seconds as well.
        let files = FileWatch()
        files.watch(state.path)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if !files.isWatching(state.lockPath) { files.watch(state.lockPath) }
            if let running = state.runningCoordinator() { return running }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                // It exited: another one may have won the race for the lock.
                if let running = state.runningCoordinator() { return running }
                Terminal.error("the coordinator exited at once; see \(state.logPath)")
                throw ExitCode(1)
            }
            _ = files.wait(timeout: max(0, min(exitCheck, deadline.timeIntervalSinceNow)))
        }
        Terminal.error("the coordinator did not start within 10 s; see \(state.logPath)")
        throw ExitCode(1)
    }

    /// The `idle_exit` of a coordinator started by a command, unless a setting says otherwise (seconds).
    static let idleExit: Double = 600

    /// Seconds between two looks at a starting coordinator that might have exited.
    static let exitCheck = 0.25

    /// Waits until no coordinator holds the lock of `state` (it exited), or `timeout` passes;
    /// true when it is free. A thread blocks in `flock` on the lock file, so the wait ends the
    /// moment the holder's lock goes; after a timeout that thread stays blocked until then
    /// (the caller is about to kill the holder).
    static func waitForExit(state: StateLocation, timeout: Double) async -> Bool {
        let fd = open(state.lockPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return state.runningCoordinator() == nil }
        // The first answer wins, even one that comes before the continuation is in place.
        let slot = Locked<(waiter: CheckedContinuation<Bool, Never>?, answer: Bool?)>((nil, nil))
        let finish: @Sendable (Bool) -> Void = { freed in
            slot.withLock { s -> CheckedContinuation<Bool, Never>? in
                guard s.answer == nil else { return nil }
                s.answer = freed
                defer { s.waiter = nil }
                return s.waiter
            }?.resume(returning: freed)
        }
        let timer = Task {
            try? await Task.sleep(for: .seconds(timeout))
            finish(false)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { c in
            let early = slot.withLock { s -> Bool? in
                if s.answer == nil { s.waiter = c }
                return s.answer
            }
            if let early {
                close(fd)
                c.resume(returning: early)
                return
            }
            let locker = Thread {
                while flock(fd, LOCK_SH) != 0 && currentErrno() == EINTR {}
                flock(fd, LOCK_UN)
                close(fd)
                finish(true)
            }
            locker.start()
        }
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
