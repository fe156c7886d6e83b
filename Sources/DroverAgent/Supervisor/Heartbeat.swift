import CDroverSys
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes the heartbeat file every interval from a thread of its own, so neither job load
/// nor the supervisor's work can delay it.
final class HeartbeatWriter: Sendable {
    let directory: StateDirectory
    /// The agent's own interval (`run --heartbeat-interval`), used while no lease asks for another.
    let ownInterval: Double
    /// The interval the live leases ask for (`LeaseWatch.wantedBeat`).
    private let wanted = Locked<Double?>(nil)
    /// The beating thread waits on this pipe's read end, so a new interval takes effect at
    /// once (not after a sleep of the old one); nil when no pipe could be made (then it does
    /// at the next beat).
    private let wake: (read: Int32, write: Int32)?
    let startedAt = wallTime()
    let bootID = Platform.bootID()
    let machine = MachineIdentity.current
    private let running = Locked(0)
    private let coordinators = Locked<[String]>([])
    private let wakeups = Locked(0)
    private let stopped = Locked(false)
    private let sequence = Locked(0)

    /// Sent to the agent itself when a beat finds the directory taken over.
    static let ownerChangedSignal = SIGUSR2

    init(directory: StateDirectory, interval: Double) {
        self.directory = directory
        self.ownInterval = interval
        var fds: [Int32] = [-1, -1]
        if fds.withUnsafeMutableBufferPointer({ drover_cloexec_pipe($0.baseAddress) }) == 0 {
            _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
            wake = (fds[0], fds[1])
        } else {
            wake = nil
        }
    }

    /// The interval in force: the live leases' wish, else the agent's own.
    var interval: Double { wanted.withLock { $0 } ?? ownInterval }

    /// What the live leases ask for (nil: nothing); a change wakes the beating thread.
    func setWanted(_ seconds: Double?) {
        let changed = wanted.withLock { old -> Bool in
            defer { old = seconds }
            return old != seconds
        }
        if changed { ring() }
    }

    private func ring() {
        guard let wake else { return }
        var byte: UInt8 = 1
        _ = posixWrite(wake.write, &byte, 1)
    }

    /// The number of running attempts, reported in the next beat.
    func setRunning(_ n: Int) { running.withLock { $0 = n } }

    /// The coordinators whose lease is live, reported in the next beat.
    func setCoordinators(_ ids: [String]) { coordinators.withLock { $0 = ids } }

    /// How many times the supervisor's loop has woken so far, reported in the next beat.
    func setWakeups(_ n: Int) { wakeups.withLock { $0 = n } }

    func stop() {
        stopped.withLock { $0 = true }
        ring()
    }

    /// Writes one beat now (the first is written before `run --detach` returns). Atomic but not
    /// fsynced: a beat is only worth anything while the agent lives (docs/state-format.md).
    func beat() throws(SystemError) {
        let seq = sequence.withLock { n in
            n += 1
            return n
        }
        var o = JSONObject()
        o.set("format", StateDirectory.formatVersion)
        o.set("version", AgentInfo.version)
        o.set("build", AgentInfo.buildHash)
        o.set("pid", Int(getpid()))
        o.set("started_at", startedAt)
        o.set("boot_id", bootID)
        o.set("machine_id", machine.machineID)
        o.set("hostname", machine.hostname)
        o.set("seq", seq)
        o.set("time", wallTime())
        o.set("interval", interval)
        Platform.loadSampler.sample().write(into: &o)
        o.set("cpus", Platform.cpuCount)
        o.set("running", running.withLock { $0 })
        o.set("wakeups", wakeups.withLock { $0 })
        o.set("coordinators", raw: "[" + coordinators.withLock { $0 }.map(JSONText.quote).joined(separator: ",") + "]")
        try AtomicFile.write(Array((o.text + "\n").utf8), to: directory.heartbeatFile, durable: false)
    }

    /// Starts the beating thread.
    func start() {
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        _ = pthread_create(&thread, nil, { raw in
            let writer = Unmanaged<HeartbeatWriter>.fromOpaque(raw!).takeRetainedValue()
            writer.loop()
            return nil
        }, box.toOpaque())
        pthread_detach(thread)
    }

    private func loop() {
        // The deadline of the last beat (the first was written before the thread started).
        var last = monotonicTime()
        var next = last + interval
        while !stopped.withLock({ $0 }) {
            let wait = next - monotonicTime()
            if wait > 0 {
                if sleepOrWake(wait) {
                    // A new interval (or stop): count it from the last beat.
                    next = last + interval
                    continue
                }
            }
            // Another machine took the directory over (a shared home; its heartbeat is not
            // ours to overwrite): stop beating and make the main loop look at the owner now,
            // without waiting for its sweep. A local change of `owner.json` wakes it anyway;
            // this covers a write by another machine over NFS, which raises no local event.
            if Ownership.takenOverBy(directory, me: machine) != nil {
                kill(getpid(), Self.ownerChangedSignal)
                return
            }
            do { try beat() } catch { AgentLog.write("heartbeat: \(error)") }
            last = next
            next += interval
            // After a stall (e.g. the machine was suspended), do not burst to catch up.
            if next < monotonicTime() {
                last = monotonicTime()
                next = last + interval
            }
        }
    }

    /// Sleeps `seconds`, or less when `ring` is called: then true (its bytes are read).
    private func sleepOrWake(_ seconds: Double) -> Bool {
        guard let wake else {
            sleepSeconds(seconds)
            return false
        }
        let until = monotonicTime() + seconds
        while true {
            let left = until - monotonicTime()
            if left <= 0 { return false }
            var p = pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, Int32(min(left * 1000, Double(Int32.max)).rounded(.up)))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            var buffer = [UInt8](repeating: 0, count: 64)
            _ = buffer.withUnsafeMutableBytes { read(wake.read, $0.baseAddress, $0.count) }
            return true
        }
    }
}

/// The agent's version and build hash.
public enum AgentInfo {
    public static let version = AgentVersion.version

    /// The first 12 hex digits of the SHA-256 of the running executable: identifies the build.
    public static let buildHash: String = {
        (try? LocalFile.sha256(currentExecutable())).map { String($0.prefix(12)) } ?? "unknown"
    }()
}

/// Appends diagnostics to `agent.log` (never secrets: no environments, no command output).
/// Lines are not fsynced: they are diagnostics, and a crash loses at most the last few.
enum AgentLog {
    nonisolated(unsafe) static var path: String?

    static func write(_ message: String) {
        let line = "\(JSONText.number(wallTime())) [\(getpid())] \(message)"
        if let path { try? appendLine(line, to: path, durable: false) } else {
            let bytes = Array((line + "\n").utf8)
            _ = bytes.withUnsafeBytes { posixWrite(2, $0.baseAddress, $0.count) }
        }
    }
}

/// Sleeps for `seconds`, resuming after signals.
func sleepSeconds(_ seconds: Double) {
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
