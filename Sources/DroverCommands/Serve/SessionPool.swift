import DroverCoordinator
import DroverInventory

/// The SSH connections `drover serve` (and `drover map --line-buffer`) read output through,
/// shared: every viewer of a host's output (live tails in many tabs, the stderr heads of a
/// batch page, a map's running jobs) gets a channel of its own on one connection to that
/// host, instead of a connection (TCP, key exchange, authentication) each.
///
/// A connection serves at most `channelsPerConnection` viewers at once (OpenSSH refuses
/// channels beyond its `MaxSessions`, 10 by default); more open another. It is closed when its
/// last viewer leaves: nothing stays connected while no one looks. A connection on which a
/// stream failed takes no new viewers (those on it finish as they can); the next viewer
/// connects anew. What is not shared is the remote command: each viewer runs its own
/// `drover-agent output`, because each wants the output from its start (docs/dashboard.md).
actor SessionPool {
    static let channelsPerConnection = 8

    private final class Entry {
        let id: Int
        let connecting: Task<any HostSession, any Error>
        var users = 1
        var broken = false
        init(id: Int, connecting: Task<any HostSession, any Error>) {
            self.id = id
            self.connecting = connecting
        }
    }

    /// A viewer's use of a shared connection; give it back with `release`.
    struct Lease: Sendable {
        let host: String
        let id: Int
        let session: any HostSession
    }

    private var entries: [String: [Entry]] = [:]
    private var nextID = 0

    /// How many connections are open or opening to `host` (for the tests and the log).
    func connections(to host: String) -> Int { entries[host]?.count ?? 0 }

    /// A connection to `spec`'s host with room for one more channel, opened when none has.
    func acquire(_ spec: HostSpec) async throws -> Lease {
        let entry: Entry
        if let e = entries[spec.name]?.first(where: { !$0.broken && $0.users < Self.channelsPerConnection }) {
            e.users += 1
            entry = e
        } else {
            nextID += 1
            entry = Entry(id: nextID, connecting: Task { try await spec.openSession() })
            entries[spec.name, default: []].append(entry)
        }
        do {
            return Lease(host: spec.name, id: entry.id, session: try await entry.connecting.value)
        } catch {
            await release(host: spec.name, id: entry.id, broken: true)
            throw error
        }
    }

    /// Gives a connection back (`broken`: a stream on it failed, so it takes no new viewers);
    /// the last viewer's release closes it.
    func release(_ lease: Lease, broken: Bool) async {
        await release(host: lease.host, id: lease.id, broken: broken)
    }

    private func release(host: String, id: Int, broken: Bool) async {
        guard let entry = entries[host]?.first(where: { $0.id == id }) else { return }
        entry.users -= 1
        if broken { entry.broken = true }
        guard entry.users == 0 else { return }
        entries[host]?.removeAll { $0.id == id }
        if entries[host]?.isEmpty == true { entries[host] = nil }
        if let session = try? await entry.connecting.value { await session.shutdown() }
    }
}
