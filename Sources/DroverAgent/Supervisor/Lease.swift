import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The coordinators' leases: while a coordinator renews its lease, the agent keeps that
/// coordinator's jobs running. Each coordinator has its own file, `leases/<coordinator id>`,
/// so several coordinators can share an agent and each lease covers only its own attempts;
/// the single `lease` file of earlier coordinators is still honoured.
///
/// Expiry is judged on the agent's own monotonic clock — time since a lease file last
/// changed — so clock skew between coordinator and host cannot trigger it. A lease file that
/// is removed (a coordinator that left with `drover down`) is withdrawn: no dead man's switch.
struct LeaseWatch {
    struct Lease: Equatable {
        var coordinator: String
        var epoch: Int
        var time: Double
        var ttl: Double
        /// From the single `lease` file: it also covers attempts that name no coordinator.
        var legacy = false
        /// How often the coordinator wants a heartbeat (`DroverProtocol.Lease.beat`).
        var beat: Double? = nil
    }

    private struct Watched {
        var text: [UInt8]
        var lastChange: Double
        var lease: Lease?
        var expiredHandled = false
    }

    /// By file path.
    private var watched: [String: Watched] = [:]

    /// Re-reads every lease file of `dir`; returns the leases that just expired, once per expiry.
    mutating func check(_ dir: StateDirectory) -> [Lease] {
        let now = monotonicTime()
        var paths = listDirectory(dir.leases).filter { !$0.hasPrefix(".") }.map { dir.leases + "/" + $0 }
        if LocalFile.exists(dir.leaseFile) { paths.append(dir.leaseFile) }
        for gone in watched.keys where !paths.contains(gone) { watched[gone] = nil }
        var expired: [Lease] = []
        for path in paths {
            let bytes = (try? LocalFile.read(path)) ?? []
            if watched[path]?.text != bytes {
                var lease: Lease?
                if let node = try? JSONParser.parse(bytes), let c = node["coordinator"]?.stringValue, let ttl = node["ttl"]?.doubleValue, ttl > 0 {
                    lease = Lease(coordinator: c, epoch: node["epoch"]?.intValue ?? 0, time: node["time"]?.doubleValue ?? 0, ttl: ttl,
                                  legacy: path == dir.leaseFile, beat: node["beat"]?.doubleValue.flatMap(HeartbeatCadence.valid))
                }
                // No lease (or an unreadable one) in a file: no dead man's switch for it.
                watched[path] = Watched(text: bytes, lastChange: now, lease: lease)
            }
            guard let w = watched[path], let lease = w.lease, !w.expiredHandled, now - w.lastChange > lease.ttl else { continue }
            watched[path]?.expiredHandled = true
            expired.append(lease)
        }
        return expired
    }

    /// When (monotonic) the next lease not yet expired runs out, if any: the agent wakes then.
    var nextExpiry: Double? {
        watched.values.compactMap { w -> Double? in
            guard let l = w.lease, !w.expiredHandled else { return nil }
            return w.lastChange + l.ttl
        }.min()
    }

    /// The newest renewal of a lease covering attempts of `coordinator` (nil: attempts that name
    /// none, covered by the legacy `lease` file only); nil when no lease covers them.
    func holder(of coordinator: String?) -> (lease: Lease, lastChange: Double)? {
        var best: (lease: Lease, lastChange: Double)?
        for w in watched.values {
            guard let l = w.lease, l.coordinator == coordinator || (l.legacy && coordinator == nil) else { continue }
            if best == nil || w.lastChange > best!.lastChange { best = (l, w.lastChange) }
        }
        return best
    }

    /// The lease files being judged (the agent also watches each, for changes made in place).
    var files: [String] { Array(watched.keys) }

    /// The leases renewed within their ttl.
    private var liveLeases: [Lease] {
        let now = monotonicTime()
        return watched.values.compactMap { w in w.lease.flatMap { now - w.lastChange <= $0.ttl ? $0 : nil } }
    }

    /// The shortest heartbeat interval the live leases ask for; nil when none asks.
    var wantedBeat: Double? { liveLeases.compactMap(\.beat).min() }

    /// The coordinators whose lease is live (renewed within its ttl), sorted.
    var live: [String] { Array(Set(liveLeases.map(\.coordinator))).sorted() }
}

/// Leases as another process sees them (`stop --keep-if-served`): a lease file whose last
/// change (its mtime, this machine's clock) is within its ttl.
enum LeaseFiles {
    /// Coordinators with a live lease in `dir`, sorted.
    static func live(_ dir: StateDirectory, now: Double = wallTime()) -> [String] {
        var paths = listDirectory(dir.leases).filter { !$0.hasPrefix(".") }.map { dir.leases + "/" + $0 }
        paths.append(dir.leaseFile)
        var out = Set<String>()
        for path in paths {
            guard let st = try? FileStatus.of(path), let node = readJSON(path), let c = node["coordinator"]?.stringValue,
                  let ttl = node["ttl"]?.doubleValue, ttl > 0 else { continue }
            if now - st.modified <= ttl { out.insert(c) }
        }
        return out.sorted()
    }
}
