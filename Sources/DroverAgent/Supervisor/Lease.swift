import DroverCore

/// The coordinator's lease: while it is renewed, the agent keeps the coordinator's jobs running.
///
/// Expiry is judged on the agent's own monotonic clock — time since the lease file last
/// changed — so clock skew between coordinator and host cannot trigger it.
struct LeaseWatch {
    struct Lease: Equatable {
        var coordinator: String
        var epoch: Int
        var time: Double
        var ttl: Double
    }

    private(set) var lease: Lease?
    private var lastChange = monotonicTime()
    private var lastText: [UInt8] = []
    private(set) var expiredHandled = false

    /// Re-reads the lease file; returns the lease that just expired, once per expiry.
    mutating func check(_ path: String) -> Lease? {
        let bytes = (try? LocalFile.read(path)) ?? []
        if bytes != lastText {
            lastText = bytes
            lastChange = monotonicTime()
            expiredHandled = false
            if let node = try? JSONParser.parse(bytes), let c = node["coordinator"]?.stringValue, let ttl = node["ttl"]?.doubleValue, ttl > 0 {
                lease = Lease(coordinator: c, epoch: node["epoch"]?.intValue ?? 0, time: node["time"]?.doubleValue ?? 0, ttl: ttl)
            } else {
                lease = nil  // no lease (or an unreadable one): no dead man's switch
            }
        }
        guard let lease, !expiredHandled, monotonicTime() - lastChange > lease.ttl else { return nil }
        expiredHandled = true
        return lease
    }
}
