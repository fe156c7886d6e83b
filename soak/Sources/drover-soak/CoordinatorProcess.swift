import DroverCoordinator
import DroverCore
import Foundation

/// The coordinator under test: `drover coordinator` started detached on the soak's state
/// directory, killed with SIGKILL by the fault injector and started again on the same state.
final class CoordinatorProcess {
    let drover: String
    let state: String
    let inventory: String
    /// More `drover coordinator` options (the soak's quarantine settings).
    let extra: [String]
    private(set) var pid: pid_t = 0
    /// How many times it was started.
    private(set) var starts = 0

    init(drover: String, state: String, inventory: String, extra: [String] = []) {
        self.extra = extra
        self.drover = drover
        self.state = state
        self.inventory = inventory
    }

    var running: Bool { pid > 0 }

    /// Starts it in a new session, its output appended to `coordinator.log`, and waits until it holds its lock.
    func start() throws {
        let location = StateLocation(explicit: state)
        try location.prepare()
        let child: pid_t
        do {
            child = try ChildProcess.startDetached([drover, "coordinator", "--state", state, "--inventory", inventory] + extra, output: location.logPath)
        } catch {
            throw SoakFailure("cannot start the coordinator: \(error)")
        }
        pid = child
        starts += 1
        let deadline = Date().addingTimeInterval(20)
        while location.runningCoordinator() != child {
            if reapIfExited() { throw SoakFailure("the coordinator exited at once; see \(location.logPath)") }
            if Date() > deadline { throw SoakFailure("the coordinator (pid \(child)) did not take its lock within 20 s") }
            usleep(20_000)
        }
    }

    /// `kill -9`, and waits for it; returns its wait status (nil when none ran).
    @discardableResult
    func kill9() -> Int32? {
        guard pid > 0 else { return nil }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        let r = waitpid(pid, &status, 0)
        pid = 0
        return r > 0 ? status : nil
    }

    /// Whether it has exited on its own (a crash); reaps it.
    func reapIfExited() -> Bool {
        guard pid > 0 else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            pid = 0
            return true
        }
        return false
    }

    /// `drover down --kill-jobs`: cancels what is left, stops the coordinator and the agents.
    func down() -> String {
        let r = try? ChildProcess.run([drover, "down", "--kill-jobs", "--state", state, "--inventory", inventory], timeout: 120)
        if pid > 0 {
            var status: Int32 = 0
            let deadline = Date().addingTimeInterval(20)
            while waitpid(pid, &status, WNOHANG) != pid {
                if Date() > deadline {
                    kill(pid, SIGKILL)
                    waitpid(pid, &status, 0)
                    break
                }
                usleep(20_000)
            }
            pid = 0
        }
        return (r?.stdoutText ?? "") + (r?.stderrText ?? "")
    }

    /// Resident set size in bytes (0 when it does not run).
    var rss: Int { pid > 0 ? Memory.rss(pid: Int(pid)) : 0 }

    /// The live heap the coordinator last recorded (`coordinator.heap`): its pid, when (Unix
    /// time), how many bytes, and how many of them SQLite holds; nil before its first record.
    var heapInUse: (pid: pid_t, time: Double, bytes: Int, sqlite: Int)? {
        guard let b = try? LocalFile.read(StateLocation(explicit: state).heapPath),
              let node = try? JSONParser.parse(b),
              let pid = node["pid"]?.intValue, let time = node["time"]?.doubleValue, let bytes = node["heap_in_use"]?.intValue else { return nil }
        return (pid_t(pid), time, bytes, node["sqlite"]?.intValue ?? 0)
    }

    /// Anonymous resident memory in bytes (0 when it does not run).
    var anonymous: Int {
        guard pid > 0, let b = try? LocalFile.read("/proc/\(pid)/status") else { return 0 }
        return Memory.anonymous(String(decoding: b, as: UTF8.self))
    }
}

/// Reading resident set sizes from /proc.
enum Memory {
    /// VmRSS of a local process, bytes.
    static func rss(pid: Int) -> Int {
        guard let b = try? LocalFile.read("/proc/\(pid)/status") else { return 0 }
        return vmRSS(String(decoding: b, as: UTF8.self))
    }

    /// The state letter of a local process (`R`, `S`, `T`, `Z`, …), "gone" when it does not exist.
    static func processState(pid: Int) -> String {
        guard let b = try? LocalFile.read("/proc/\(pid)/stat") else { return "gone" }
        let text = String(decoding: b, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return "?" }
        return text[text.index(after: close)...].split(separator: " ").first.map(String.init) ?? "?"
    }

    /// Anonymous resident memory (the heap; `RssAnon` of /proc/PID/status), bytes: what a
    /// leak grows. VmRSS also counts the program's code pages, paged in as new code paths
    /// run, and shared pages such as a journal on a tmpfs.
    static func anonymous(_ status: String) -> Int { field("RssAnon:", status) }

    /// The VmRSS line of a /proc/PID/status text, bytes.
    static func vmRSS(_ status: String) -> Int { field("VmRSS:", status) }

    /// A `kB` line of a /proc/PID/status text, bytes.
    static func field(_ name: String, _ status: String) -> Int {
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 } ?? 0
        }
        return 0
    }
}
