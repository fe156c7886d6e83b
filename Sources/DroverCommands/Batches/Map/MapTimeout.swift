import DroverCoordinator
import DroverCore
import Foundation

/// `--timeout N%`, as GNU parallel: once a job succeeded, a job that runs longer than N% of
/// the median runtime of the jobs that succeeded so far is killed. The map applies it while it
/// follows the batch (the limit moves with each success, so it is not a deadline the agent
/// could be given at dispatch): it asks the coordinator to cancel the job with the reason
/// `timed out: …` (`drover status` shows it), and counts the job as failed, as parallel does.
final class MapTimeout {
    let percent: Double
    let journal: Journal
    /// The jobs it killed.
    private(set) var killed: Set<Int> = []

    init(percent: Double, journal: Journal) {
        self.percent = percent
        self.journal = journal
    }

    /// `"200%"` → 200; nil for seconds; throws for a percentage that is not a positive number.
    static func percent(_ text: String) throws -> Double? {
        guard text.hasSuffix("%") else { return nil }
        guard let p = Double(text.dropLast()), p > 0, p.isFinite else { throw MapTimeoutError(text: text) }
        return p
    }

    /// The limit in seconds: `percent` of the median of `runtimes` (the lower middle one of an
    /// even count, as parallel takes it); nil before any job succeeded.
    static func limit(percent: Double, runtimes: [Double]) -> Double? {
        guard !runtimes.isEmpty else { return nil }
        let sorted = runtimes.sorted()
        return percent / 100 * sorted[(sorted.count - 1) / 2]
    }

    /// Kills the running jobs that are past the limit at `now`; returns when the next running
    /// job will be (nil when none runs or no job succeeded yet).
    func apply(_ jobs: [JobRecord], now: Double, label: (JobRecord) -> String) throws -> Double? {
        let runtimes = jobs.filter { $0.state == .succeeded }.compactMap { j in j.startedAt.flatMap { s in j.endedAt.map { $0 - s } } }
        guard let limit = Self.limit(percent: percent, runtimes: runtimes) else { return nil }
        var next: Double?
        for job in jobs where job.state == .running && !killed.contains(job.id) {
            guard let start = job.startedAt else { continue }
            if now - start <= limit {
                next = min(next ?? .infinity, start + limit)
                continue
            }
            let why = String(format: "timed out: ran longer than %g%% of the median runtime of the jobs that succeeded: %.1f s (the median: %.1f s)",
                             percent, limit, limit * 100 / percent)
            killed.insert(job.id)
            if try journal.requestTimeout(job: job.id, reason: why) {
                Terminal.warning("job \(label(job)) was killed because it timed out: it ran longer than \(String(format: "%g", percent))% of the median runtime (\(String(format: "%.1f", limit)) s)")
            }
        }
        return next
    }
}

/// A `--timeout` percentage that is not a positive number.
struct MapTimeoutError: Error, CustomStringConvertible {
    let text: String
    var description: String { "--timeout \(text): give seconds (--timeout 60) or a positive percentage of the median runtime (--timeout 200%)" }
}
