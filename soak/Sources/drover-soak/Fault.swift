/// One fault of the plan: what, where, and for how long.
struct Fault: CustomStringConvertible {
    enum Kind: String, CaseIterable {
        /// `scripts/testbed kill`, then `start` after the duration (every process on the host dies).
        case powerCycle = "power-off"
        /// `scripts/testbed partition`, then `heal` after the duration (shorter than the lease).
        case partition
        /// A partition longer than the coordinator's `--lease-ttl`: the agent orphans its jobs.
        case longPartition = "partition-past-lease"
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
        /// The coordinator's state directory (its journal) filled up, deleted after the duration.
        case journalFull = "journal-full"
        /// The tool the jobs run first taken away from a host (a black-hole host), put back after the duration.
        case blackHole = "black-hole"
        /// The jump host powered off: the hosts behind it are cut off (their agents run on).
        case bastionOff = "bastion-off"
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

    /// What the testbed offers: a scratch host (disk-full) and a jump host with hosts behind it (bastion-off).
    struct Setting {
        var hosts: [String]
        var scratchHost: String?
        var bastion: String?
    }

    /// The kinds a plan draws from, with their weights.
    static func weights(_ s: Setting) -> [(Kind, Int)] {
        var kinds: [(Kind, Int)] = [(.powerCycle, 18), (.partition, 18), (.longPartition, 5), (.agentKill, 14), (.agentCrash, 8),
                                    (.coordinatorKill, 16), (.coordinatorSleep, 9), (.journalFull, 7), (.blackHole, 11)]
        if s.scratchHost != nil { kinds.append((.diskFill, 10)) }
        if s.bastion != nil { kinds.append((.bastionOff, 7)) }
        return kinds
    }

    /// The opening of a seeded plan: a power-off and a black hole first (in a seeded order),
    /// then one fault of each other kind (in a seeded order), so that every run exercises every
    /// kind; the fault phase lasts until the opening is done, also past `--minutes`. After it,
    /// `next` draws by weight.
    static func opening(_ rng: inout SplitMix64, _ s: Setting) -> [Kind] {
        var first: [Kind] = [.powerCycle, .blackHole]
        var rest = weights(s).map(\.0).filter { !first.contains($0) }
        first.shuffle(using: &rng)
        rest.shuffle(using: &rng)
        return first + rest
    }

    /// The fewest faults of `kind` (each with its effect) a run of `minutes` must have: one (the
    /// opening, which takes 3 to 4 minutes), plus a third of its share of the faults after the
    /// first 4 minutes, counting 3 faults a minute (a run has 3 to 4). See docs/reliability.md.
    static func minimum(_ kind: Kind, minutes: Double, _ s: Setting) -> Int {
        let w = weights(s)
        guard let mine = w.first(where: { $0.0 == kind })?.1 else { return 0 }
        let share = Double(mine) / Double(w.reduce(0) { $0 + $1.1 })
        let drawn = kind == .coordinatorKill ? min(minutes, coordinatorKillsEnd(minutes: minutes) / 60) : minutes
        return 1 + Int((max(0, drawn - 4) * 3 * share / 3).rounded(.down))
    }

    /// Seconds into a run after which no more `kill-coordinator` is drawn: 40 % of a run of
    /// 30 minutes or more, never for shorter runs. The memory check fits each process over the
    /// last half of the run; a coordinator killed every few minutes (29 times in an hour) never
    /// lives long enough to tell a leak from caches that warm up, so a long run keeps one
    /// coordinator alive through its second half (it is still stopped, its disk still filled).
    static func coordinatorKillsEnd(minutes: Double) -> Double {
        minutes >= 30 ? minutes * 60 * 0.4 : .infinity
    }

    /// The next fault of a seeded plan: of kind `kind`, or one drawn by weight among the kinds
    /// not in `excluding`. The opening's faults (`brief`) take the first quarter of each
    /// duration range and 2–3 s gaps, so that the opening of every kind stays within about
    /// 3 minutes.
    static func next(_ rng: inout SplitMix64, _ s: Setting, kind given: Kind? = nil, brief: Bool = false, excluding: Set<Kind> = []) -> Fault {
        let kind = given ?? rng.weighted(weights(s).filter { !excluding.contains($0.0) })
        let gap = brief ? rng.uniform(2...3) : rng.uniform(2...8)
        func d(_ r: ClosedRange<Double>) -> Double {
            brief ? rng.uniform(r.lowerBound...(r.lowerBound + (r.upperBound - r.lowerBound) / 4)) : rng.uniform(r)
        }
        let host = s.hosts[Int.random(in: 0..<s.hosts.count, using: &rng)]
        switch kind {
        case .powerCycle:
            return Fault(kind: kind, host: host, duration: d(1...15), gap: gap)
        case .partition:
            // At least 5 s (the host turns suspect 3.5 s after its last beat: the effect checked);
            // mostly shorter than --dead-after (10 s), some longer; all shorter than the lease
            // less its renewal interval (30 − 10 s), so that no job is orphaned.
            let short = d(5...9), long = d(11...18)
            return Fault(kind: kind, host: host, duration: rng.weighted([(short, 5), (long, 4)]), gap: gap)
        case .longPartition:
            // The lease (30 s) plus its renewal interval (10 s) and a margin: the agent orphans.
            return Fault(kind: kind, host: host, duration: d(44...50), gap: gap)
        case .agentKill, .agentCrash:
            return Fault(kind: kind, host: host, duration: 0, gap: gap)
        case .coordinatorKill:
            return Fault(kind: kind, host: nil, duration: d(0.5...8), gap: gap)
        case .coordinatorSleep:
            // Longer than --dead-after (10 s); shorter than the lease less its renewal interval.
            return Fault(kind: kind, host: nil, duration: d(11...16), gap: gap)
        case .diskFill:
            return Fault(kind: kind, host: s.scratchHost, duration: d(8...20), gap: gap)
        case .journalFull:
            return Fault(kind: kind, host: nil, duration: d(6...15), gap: gap)
        case .blackHole:
            // Long enough for several jobs to fail there and the breaker to trip.
            return Fault(kind: kind, host: host, duration: d(12...25), gap: gap)
        case .bastionOff:
            return Fault(kind: kind, host: s.bastion, duration: d(6...15), gap: gap)
        }
    }
}
