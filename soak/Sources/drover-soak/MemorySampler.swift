import Foundation

/// Samples the resident size of the coordinator and of each host's agent during the run, to
/// tell growth without bound from a working set that levels off.
final class MemorySampler {
    struct Sample {
        var time: Double
        var bytes: Int
    }

    let testbed: Testbed
    let started: Date
    let interval: Double
    private var last = Date.distantPast
    /// Samples by process: "coordinator", "agent h1", …
    private(set) var samples: [String: [Sample]] = [:]

    init(testbed: Testbed, started: Date, interval: Double = 10) {
        self.testbed = testbed
        self.started = started
        self.interval = interval
    }

    /// Takes a sample when one is due; `roots` maps each host that is on and reachable to its agent root.
    func tick(coordinator: CoordinatorProcess, roots: [String: String]) {
        guard Date().timeIntervalSince(last) >= interval else { return }
        last = Date()
        let t = last.timeIntervalSince(started)
        let c = coordinator.rss
        if c > 0 { samples["coordinator", default: []].append(Sample(time: t, bytes: c)) }
        for (host, root) in roots.sorted(by: { $0.key < $1.key }) {
            guard let text = try? testbed.shell(host, #"p=$(cat "$1/agent.lock" 2>/dev/null) && [ -n "$p" ] && cat "/proc/$p/status" 2>/dev/null || true"#, root, timeout: 10) else { continue }
            let bytes = Memory.vmRSS(text)
            if bytes > 0 { samples["agent \(host)", default: []].append(Sample(time: t, bytes: bytes)) }
        }
    }

    /// For each process: the largest sample of the first and of the last third of the run.
    func earlyAndLate() -> [(process: String, early: Int, late: Int, count: Int)] {
        samples.keys.sorted().compactMap { key in
            guard let list = samples[key], let end = list.last?.time, list.count >= 3 else { return nil }
            let third = end / 3
            let early = list.filter { $0.time <= third }.map(\.bytes).max() ?? 0
            let late = list.filter { $0.time >= 2 * third }.map(\.bytes).max() ?? 0
            return (key, early, late, list.count)
        }
    }
}
