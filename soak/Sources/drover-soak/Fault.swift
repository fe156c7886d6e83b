/// One fault of the plan: what, where, and for how long.
struct Fault: CustomStringConvertible {
    enum Kind: String {
        /// `scripts/testbed kill`, then `start` after the duration (every process on the host dies).
        case powerCycle = "power-off"
        /// `scripts/testbed partition`, then `heal` after the duration.
        case partition
        /// `kill -9` of the agent daemon only (its shims and jobs go on).
        case agentKill = "kill-agent"
        /// `kill -9` of every drover-agent process on the host: the agent, the shims, `tail`.
        case agentCrash = "kill-agent-tree"
        /// `kill -9` of the coordinator, started again on the same state after the duration.
        case coordinatorKill = "kill-coordinator"
        /// SIGSTOP of the coordinator (a closed laptop lid) for longer than --dead-after, then SIGCONT.
        case coordinatorSleep = "stop-coordinator"
        /// The scratch host's agent root filled up, deleted after the duration.
        case diskFill = "disk-full"
        /// The tool the jobs run first taken away from a host (a black-hole host), put back after the duration.
        case blackHole = "black-hole"
    }

    var kind: Kind
    /// The host, or nil for the coordinator.
    var host: String?
    /// Seconds the fault lasts (0 for instant faults).
    var duration: Double
    /// Seconds of calm before it.
    var gap: Double

    var description: String {
        let what = host.map { "\(kind.rawValue) \($0)" } ?? kind.rawValue
        return duration > 0 ? "\(what) for \(String(format: "%.1f", duration)) s" : what
    }

    /// The kinds a plan draws from, with their weights.
    static func weights(scratchHost: String?) -> [(Kind, Int)] {
        var kinds: [(Kind, Int)] = [(.powerCycle, 20), (.partition, 22), (.agentKill, 15), (.agentCrash, 8), (.coordinatorKill, 18), (.coordinatorSleep, 10), (.blackHole, 12)]
        if scratchHost != nil { kinds.append((.diskFill, 12)) }
        return kinds
    }

    /// The opening of a seeded plan: the kinds the soak added for checkpoints and black holes
    /// first (in a seeded order), so that even a 2-minute run exercises them, then one of each
    /// other kind in a seeded order; after it, `next` draws by weight.
    static func opening(_ rng: inout SplitMix64, scratchHost: String?) -> [Kind] {
        var first: [Kind] = [.powerCycle, .blackHole]
        var rest = weights(scratchHost: scratchHost).map(\.0).filter { !first.contains($0) }
        first.shuffle(using: &rng)
        rest.shuffle(using: &rng)
        return first + rest
    }

    /// The next fault of a seeded plan: of kind `kind`, or one drawn by weight.
    static func next(_ rng: inout SplitMix64, hosts: [String], scratchHost: String?, kind given: Kind? = nil) -> Fault {
        let kind = given ?? rng.weighted(weights(scratchHost: scratchHost))
        let gap = rng.uniform(2...8)
        let host = hosts[Int.random(in: 0..<hosts.count, using: &rng)]
        switch kind {
        case .powerCycle:
            return Fault(kind: kind, host: host, duration: rng.uniform(1...15), gap: gap)
        case .partition:
            // Mostly shorter than --dead-after (10 s); some longer; a few longer than the lease (30 s).
            let d = rng.weighted([(rng.uniform(2...9), 5), (rng.uniform(11...25), 4), (rng.uniform(32...40), 1)])
            return Fault(kind: kind, host: host, duration: d, gap: gap)
        case .agentKill, .agentCrash:
            return Fault(kind: kind, host: host, duration: 0, gap: gap)
        case .coordinatorKill:
            return Fault(kind: kind, host: nil, duration: rng.uniform(0.5...8), gap: gap)
        case .coordinatorSleep:
            // Longer than --dead-after (10 s), some longer than the old 30 s lease.
            return Fault(kind: kind, host: nil, duration: rng.uniform(11...40), gap: gap)
        case .diskFill:
            return Fault(kind: kind, host: scratchHost, duration: rng.uniform(8...20), gap: gap)
        case .blackHole:
            // Long enough for several jobs to fail there and the breaker to trip.
            return Fault(kind: kind, host: host, duration: rng.uniform(12...25), gap: gap)
        }
    }
}
