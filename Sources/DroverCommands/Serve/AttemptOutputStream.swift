import DroverCoordinator
import DroverCore
import DroverInventory
import DroverWeb
import Foundation

/// An attempt's output for `drover serve`: the copy kept here once it ended, else what the
/// agent on its host prints (`drover-agent output`, with `--follow` until the attempt ends,
/// or until the journal says it was lost or replaced), on a connection shared with the other
/// viewers of the host (`SessionPool`).
struct AttemptOutputStream {
    let access: JournalAccess
    let inventory: Inventory
    let sessions: SessionPool

    func open(job: Int, attempt n: Int, follow: Bool) -> AsyncThrowingStream<OutputChunk, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await pump(job: job, attempt: n, follow: follow, into: continuation)
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func pump(job: Int, attempt n: Int, follow: Bool, into out: AsyncThrowingStream<OutputChunk, any Error>.Continuation) async throws {
        let state = access.state
        guard let a = try access.read({ try $0.attempt(job, n) }) else { throw OutputError(message: "job \(job) has no attempt \(n)") }
        if let s = a.agentState, AgentStates.final.contains(s), let kept = AttemptOutput.read(state: state, job: job, attempt: n) {
            if !kept.stdout.isEmpty { out.yield(.stdout(kept.stdout)) }
            if !kept.stderr.isEmpty { out.yield(.stderr(kept.stderr)) }
            return
        }
        guard let spec = inventory.host(named: a.host) else {
            throw OutputError(message: "host \(a.host) of this job is not in \(inventory.source) (start drover serve with the coordinator's --inventory)")
        }
        let command: String
        do { command = try access.read { try JobFollower.outputCommand(a, journal: $0, inventory: inventory, follow: follow) } } catch {
            throw OutputError(message: "cannot name the output of job \(job) attempt \(n) on \(a.host)")
        }
        let lease = try await sessions.acquire(spec)
        let stream: HostStream
        do { stream = try lease.session.stream(command, stdin: nil) } catch {
            await sessions.release(lease, broken: true)
            throw error
        }
        // A followed attempt whose host died never ends on its own: the journal says when to stop.
        let watcher: Task<Void, Never>? = follow ? Task { [access] in
            var seen = await access.bell.current
            while !Task.isCancelled {
                let now = try? access.read { try $0.attempt(job, n) }
                if now == nil || now!.stale || now!.state == "lost" { stream.cancel(); return }
                seen = await access.bell.next(after: seen)
            }
        } : nil
        defer { watcher?.cancel() }
        do {
            // A viewer that leaves closes its channel at once, not at the job's next output.
            try await withTaskCancellationHandler {
                for try await event in stream {
                    try Task.checkCancellation()
                    switch event {
                    case .stdout(let b): out.yield(.stdout(b))
                    case .stderr(let b): out.yield(.stderr(b))
                    case .exit: break
                    }
                }
            } onCancel: {
                stream.cancel()
            }
        } catch {
            stream.cancel()
            await sessions.release(lease, broken: !Task.isCancelled)
            throw error
        }
        await sessions.release(lease, broken: false)
    }
}

/// Why an attempt's output cannot be shown.
struct OutputError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
