import DroverCore
import DroverProtocol
import DroverSSH
import Foundation

/// A snapshot on a host to copy into the coordinator's store.
struct CheckpointPull: Sendable {
    var job: Int
    var event: CheckpointEvent
    /// `ROOT/attempts/JOB/N/checkpoints/K/files` on the host.
    var remoteFolder: String
    /// The coordinator's store (`STATE/store`).
    var store: String
}

extension HostLink {
    /// Queues a snapshot to pull (done by the collect loop, between result fetches).
    func pull(_ p: CheckpointPull) {
        state.withLock { $0.pulls.append(p) }
        collectWake.yield()
    }

    /// Pulls the queued snapshots while the host is connected.
    func pullCheckpoints() async {
        while true {
            let (session, next) = state.withLock { s -> ((any HostSession)?, CheckpointPull?) in
                guard let session = s.session, s.agentPath != nil, !s.pulls.isEmpty else { return (nil, nil) }
                return (session, s.pulls.removeFirst())
            }
            guard let session, let next else { return }
            let error = await download(next, session: session)
            await delegate.pulledCheckpoint(spec.name, pull: next, error: error)
            delegate.workArrived()
        }
    }

    /// Downloads the files the store lacks, each checked against its SHA-256; nil when all are there.
    private func download(_ p: CheckpointPull, session: any HostSession) async -> String? {
        do { try FileManager.default.createDirectory(atPath: p.store, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
            return "cannot create the store \(p.store): \(error.localizedDescription)"
        }
        for f in p.event.files {
            let target = p.store + "/" + f.sha256
            // Reused: touched, so the store's pruning (which spares young files) keeps it until
            // the snapshot naming it is recorded.
            if LocalFile.touch(target) { continue }
            let tmp = p.store + "/.pull-" + f.sha256 + "-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
            do throws(SSHError) {
                try await session.download(p.remoteFolder + "/" + f.path, to: tmp)
            } catch {
                unlink(tmp)
                return "\(f.path): \(error)"
            }
            guard (try? LocalFile.sha256(tmp)) == f.sha256 else {
                unlink(tmp)
                return "\(f.path): its SHA-256 differs from the snapshot's manifest"
            }
            chmod(tmp, 0o400)
            guard rename(tmp, target) == 0 else {
                unlink(tmp)
                return "\(f.path): cannot move it into \(p.store)"
            }
        }
        return nil
    }
}
