import DroverCoordinator

/// The kinds of job the soak submits, each designed so that its end is known in advance
/// whatever the faults do (enough retry and host-loss budget for the succeeding kinds).
enum JobKind: String, CaseIterable {
    /// A few hundred milliseconds; succeeds.
    case short
    /// Runs 8–25 s, so faults catch it running; succeeds.
    case long
    /// Exits 3 on every attempt; ends `failed` with exit 3.
    case failing
    /// Sleeps past its 2 s timeout on every attempt; ends `failed`, last attempt `timed_out`.
    case timeout
    /// Leaves a double-forked child and a `setsid` child behind, then exits 0; succeeds,
    /// and the agent must kill both.
    case forking
    /// Writes about 6 MB to stdout; succeeds.
    case large

    /// How often each kind is drawn.
    static let weights: [(JobKind, Int)] = [(.short, 30), (.long, 18), (.failing, 12), (.timeout, 10), (.forking, 15), (.large, 15)]

    var succeeds: Bool { self != .failing && self != .timeout }

    /// The label that keeps a kind off the host whose disk is filled: a full disk makes a job
    /// fail to start, which would change how `failing` and `timeout` jobs end (and `large`
    /// outputs would fill it for good).
    static let steadyDisk = ["disk": "steady"]

    /// The request for one job of this kind. `evidence` is the per-run file name (under the
    /// host's home) where a successful attempt appends `<agent job> <attempt> <host>` just
    /// before it exits 0, so a second completion would be visible on the hosts.
    func request(_ rng: inout SplitMix64, evidence: String) -> JobRequest {
        let mark = "printf '%s %s %s\\n' \"$DROVER_JOB\" \"$DROVER_ATTEMPT\" \"$(hostname)\" >> \"$HOME/\(evidence)\""
        var r: JobRequest
        switch self {
        case .short:
            r = JobRequest(shell: "sleep \(tenths(&rng, 0.1...0.8)) && echo short && \(mark)")
        case .long:
            r = JobRequest(shell: "sleep \(tenths(&rng, 8...25)) && echo long && \(mark)")
        case .failing:
            r = JobRequest(shell: "sleep \(tenths(&rng, 0.2...1.5)); echo failing on purpose >&2; exit 3")
        case .timeout:
            r = JobRequest(shell: "echo sleeping past the timeout; exec sleep 120")
            r.timeout = 2
        case .forking:
            r = JobRequest(shell: "(sleep 300 </dev/null >/dev/null 2>&1 &); setsid -f sleep 300 </dev/null >/dev/null 2>&1; sleep \(tenths(&rng, 0.5...3)) && \(mark)")
        case .large:
            r = JobRequest(shell: "yes \"soak large output line of $DROVER_JOB\" | head -c 6000000 && \(mark)")
        }
        r.name = "soak-\(rawValue)"
        if self == .large {
            // The agent keeps every attempt's output (nothing removes old attempts yet): 6 MB
            // outputs would fill the scratch host's 128 MiB tmpfs for good within minutes.
            r.labels = Self.steadyDisk
        }
        if succeeds {
            // Enough budget that no fault can make it fail for good: retries for what a full
            // disk or a killed shell does, and host-loss re-runs for power-offs and partitions.
            r.retry = RetryPolicy(maxAttempts: 8, initial: 1, multiplier: 2, max: 4, on: [.nonZero, .signal, .timeout, .resourceLimit, .startFailed])
            r.lostRetries = 40
        } else {
            r.retry = RetryPolicy(maxAttempts: 2, initial: 0.5, multiplier: 2, max: 1)
            r.lostRetries = 40
            r.labels = Self.steadyDisk
        }
        return r
    }

    private func tenths(_ rng: inout SplitMix64, _ range: ClosedRange<Double>) -> String {
        let v = (rng.uniform(range) * 10).rounded() / 10
        return String(v)
    }
}
