import DroverCoordinator
import DroverProtocol

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
    /// Counts to 40–80 at two a second (20–40 s) in a `progress` file it replaces by rename,
    /// snapshotted every 2 s (`checkpoint`); restarts from the restored count; succeeds.
    case checkpointed
    /// Sleeps 60 s, pinned by the `partition-past-lease` fault to the host it cuts off for
    /// longer than the lease, where its agent orphans it; succeeds (re-run there after the heal).
    /// Never drawn for the job stream.
    case outlivesLease = "outlives-lease"

    /// How often each kind is drawn.
    static let weights: [(JobKind, Int)] = [(.short, 30), (.long, 18), (.failing, 12), (.timeout, 10), (.forking, 15), (.large, 15), (.checkpointed, 6)]

    var succeeds: Bool { self != .failing && self != .timeout }

    /// The label that keeps a kind off the host whose disk is filled: a full disk makes a job
    /// fail to start, which would change how `failing` and `timeout` jobs end (and `large`
    /// outputs would fill it for good).
    static let steadyDisk = ["disk": "steady"]

    /// Seconds between two counts of a `checkpointed` job.
    static let tick = 0.5
    /// Its checkpoint interval.
    static let checkpointEvery = 2.0

    /// The request for one job of this kind. A successful attempt appends
    /// `<agent job> <attempt> <host> <unix time>` to the per-run evidence file (under the host's
    /// home) just before it exits 0: its side effect, counted on the hosts whatever the journal says. The kinds that
    /// succeed (but `checkpointed`) first run the per-run tool, which the black-hole fault takes away.
    func request(_ rng: inout SplitMix64, files: RunFiles) -> JobRequest {
        let mark = "printf '%s %s %s %s\\n' \"$DROVER_JOB\" \"$DROVER_ATTEMPT\" \"$(hostname)\" \"$(date +%s.%N)\" >> \"$HOME/\(files.evidence)\""
        let tool = "\"$HOME/\(files.tool)\" \(rawValue)"
        var r: JobRequest
        switch self {
        case .short:
            r = JobRequest(shell: "\(tool) && sleep \(tenths(&rng, 0.1...0.8)) && echo short && \(mark)")
        case .long:
            r = JobRequest(shell: "\(tool) && sleep \(tenths(&rng, 8...25)) && echo long && \(mark)")
        case .failing:
            r = JobRequest(shell: "sleep \(tenths(&rng, 0.2...1.5)); echo failing on purpose >&2; exit 3")
        case .timeout:
            r = JobRequest(shell: "echo sleeping past the timeout; exec sleep 120")
            r.timeout = 2
        case .forking:
            r = JobRequest(shell: "\(tool) && (sleep 300 </dev/null >/dev/null 2>&1 &); setsid -f sleep 300 </dev/null >/dev/null 2>&1; sleep \(tenths(&rng, 0.5...3)) && \(mark)")
        case .large:
            r = JobRequest(shell: "\(tool) && yes \"soak large output line of $DROVER_JOB\" | head -c 6000000 && \(mark)")
        case .outlivesLease:
            r = JobRequest(shell: "\(tool) && sleep 60 && echo outlived && \(mark)")
        case .checkpointed:
            r = JobRequest(shell: Self.counter(to: Int(rng.uniform(40...80)), log: files.progress, mark: mark))
            r.checkpoint = CheckpointSpec(paths: ["progress"], every: Self.checkpointEvery)
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

    /// Counts from the restored `progress` (or 0) to `target`, one a tick. Each count is logged
    /// to `~/LOG` (`<job> <attempt> start|tick <count> <unix time> [restored|fresh]`, the log
    /// before the file, so the log never lags the file) and then written to `progress` by rename.
    static func counter(to target: Int, log: String, mark: String) -> String {
        """
        log="$HOME/\(log)"; n=0
        if [ "$DROVER_CHECKPOINT" = restored ]; then n=$(cat progress) || exit 1; fi
        printf '%s %s start %s %s %s\\n' "$DROVER_JOB" "$DROVER_ATTEMPT" "$n" "$(date +%s.%N)" "${DROVER_CHECKPOINT:-fresh}" >> "$log"
        while [ "$n" -lt \(target) ]; do
          sleep \(tick); n=$((n + 1))
          printf '%s %s tick %s %s\\n' "$DROVER_JOB" "$DROVER_ATTEMPT" "$n" "$(date +%s.%N)" >> "$log"
          printf '%s\\n' "$n" > progress.tmp && mv -f progress.tmp progress || exit 1
        done
        echo "counted to $n" && \(mark)
        """
    }

    private func tenths(_ rng: inout SplitMix64, _ range: ClosedRange<Double>) -> String {
        let v = (rng.uniform(range) * 10).rounded() / 10
        return String(v)
    }
}
