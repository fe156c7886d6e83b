import CDroverSys
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Starting shims, and reusing the ones that finished their attempt.
///
/// A shim the agent starts gets a pipe on its stdin (`--reuse`): once its attempt has ended
/// (its final transition is logged) it is idle, and the agent writes the next attempt to
/// start, `JOB/ATTEMPT`, to that pipe instead of starting a new process — no exec, no
/// runtime start. The shim is still a process of its own session that outlives the agent:
/// when the agent is gone the pipe ends, and the shim exits once its attempt has ended.
/// An idle shim is retired (the agent closes its pipe, it exits) after `idleSeconds`.
extension Supervisor {
    /// Seconds an idle shim waits for another attempt before it is retired.
    static let idleSeconds = 2.0
    /// At most this many idle shims are kept.
    static let maxIdleShims = 64

    func startShim(_ id: AttemptID) {
        while let pid = idleShims.popLast() {
            guard let fd = shimPipes[pid]?.fd else { continue }
            let line = Array((id.description + "\n").utf8)
            let n = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n == line.count else {
                // The shim is gone (EPIPE) or its pipe is full (it stopped reading): not reused again.
                retireShim(pid)
                continue
            }
            shimPipes[pid]?.idleSince = nil
            live[id]?.shimPID = pid
            live[id]?.childPID = pid
            live[id]?.shimStart = nil  // learned from the shim's `starting` transition
            return
        }
        do {
            let (pid, fd) = try spawnShim(id)
            live[id]?.shimPID = pid
            live[id]?.childPID = pid
            live[id]?.shimStart = nil
            if let fd { shimPipes[pid] = ShimPipe(fd: fd) }
        } catch {
            AgentLog.write("cannot start the shim of \(id): \(error)")
            markLost(id, why: "the shim could not be started: \(error)")
        }
    }

    /// A new shim process for `id`, with the write end of its handoff pipe (nil when no pipe
    /// could be made: the shim then ends with its attempt).
    private func spawnShim(_ id: AttemptID) throws(AgentError) -> (pid_t, Int32?) {
        var fds: [Int32] = [-1, -1]
        guard makeHandoffPipe(&fds) else {
            return (try spawnSession([executable, "shim", dir.root, id.description], output: dir.agentLog), nil)
        }
        defer { close(fds[0]) }
        do {
            let pid = try spawnSession([executable, "shim", dir.root, id.description, "--reuse"], output: dir.agentLog, input: fds[0])
            return (pid, fds[1])
        } catch {
            close(fds[1])
            throw error
        }
    }

    /// The shim that ran an attempt which has just ended is free for the next one.
    func shimFinished(_ pid: pid_t) {
        guard shimPipes[pid] != nil, !idleShims.contains(pid) else { return }
        if idleShims.count >= Self.maxIdleShims {
            retireShim(pid)
            return
        }
        shimPipes[pid]?.idleSince = monotonicTime()
        idleShims.append(pid)
    }

    /// Closes the shim's handoff pipe: an idle shim exits, a busy one once its attempt ended.
    func retireShim(_ pid: pid_t) {
        if let fd = shimPipes.removeValue(forKey: pid)?.fd { close(fd) }
        idleShims.removeAll { $0 == pid }
    }

    /// Retires the shims idle for `idleSeconds`.
    func retireIdleShims(now: Double) {
        for pid in idleShims {
            if let since = shimPipes[pid]?.idleSince, now - since >= Self.idleSeconds { retireShim(pid) }
        }
    }

    /// When the next idle shim is due to be retired.
    var nextShimRetirement: Double? {
        idleShims.compactMap { shimPipes[$0]?.idleSince }.min().map { $0 + Self.idleSeconds }
    }
}

/// The agent's end of a shim's handoff pipe.
struct ShimPipe {
    let fd: Int32
    /// Since when the shim has had no attempt (monotonic), nil while it runs one.
    var idleSince: Double?
}

/// A pipe whose both ends are close-on-exec (so no other child holds it open: the shim sees its
/// end as soon as the agent closes it), the write end non-blocking (the agent never waits on a shim).
private func makeHandoffPipe(_ fds: inout [Int32]) -> Bool {
    guard fds.withUnsafeMutableBufferPointer({ drover_cloexec_pipe($0.baseAddress) }) == 0 else { return false }
    _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
    return true
}
