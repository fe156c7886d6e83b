import DroverCore
import Foundation

/// Samples the memory of the coordinator and of each host's agent every few seconds, one
/// series per process lifetime (a restarted process starts a new series), to tell a leak (a
/// positive trend) from a working set that levels off.
///
/// The coordinator's judged series is its live heap less SQLite's part, both of which it
/// writes to `coordinator.heap` in its state directory with its routine heartbeats. Its
/// resident size (`RssAnon`, kept as a series "… resident", shown only) also holds the memory
/// glibc keeps after freeing it, and rose in steps at batch ends with nothing leaked. SQLite's
/// part fills its page caches (2 MB per connection) as the journal grows, a rise of minutes
/// that a fit of a few minutes takes for a leak; it is judged against its bound instead
/// (`sqlitePeak`). The agents' series are `RssAnon`.
///
/// The agents are read from this machine's /proc: each host's processes are in its own pid
/// namespace, whose pid 1 the testbed records; the agent is the process of that namespace whose
/// pid there (`NSpid`) is the one in its `agent.lock`, read through `/proc/<pid 1>/root` (the
/// host's own mounts, the scratch host's tmpfs included). Sampling needs no network, so a
/// partitioned host is sampled too; a powered-off host has no agent.
final class MemorySampler {
    struct Sample {
        var time: Double
        var bytes: Int
    }

    /// One process lifetime: "coordinator pid 123", "agent h1 pid 45".
    struct Series {
        var name: String
        var samples: [Sample]
    }

    /// A fitted trend over the last half of the run.
    struct Trend {
        var name: String
        var count: Int
        var span: Double
        /// MiB per hour (least squares).
        var slope: Double
        /// MiB, the slope times the span.
        var growth: Double
        var first: Int
        var last: Int
    }

    let testbed: Testbed
    let started: Date
    let interval: Double
    let roots: (String) -> String
    private var last = Date.distantPast
    private(set) var series: [String: Series] = [:]
    /// The most SQLite held in any coordinator, bytes.
    private(set) var sqlitePeak = 0

    init(testbed: Testbed, started: Date, interval: Double = 3, roots: @escaping (String) -> String) {
        self.testbed = testbed
        self.started = started
        self.interval = interval
        self.roots = roots
    }

    private func add(_ name: String, _ t: Double, _ bytes: Int) {
        guard bytes > 0 else { return }
        series[name, default: Series(name: name, samples: [])].samples.append(Sample(time: t, bytes: bytes))
    }

    /// The suffix of the series that are shown, not judged.
    static let shownOnly = " resident"

    /// Takes a sample when one is due.
    func tick(coordinator: CoordinatorProcess) {
        guard Date().timeIntervalSince(last) >= interval else { return }
        last = Date()
        let t = last.timeIntervalSince(started)
        if coordinator.pid > 0, Memory.processState(pid: Int(coordinator.pid)) != "Z" {
            let name = "coordinator pid \(coordinator.pid)"
            add(name + Self.shownOnly, t, coordinator.anonymous)
            // The heap figure of this coordinator, once per record (it is rewritten every 5 s).
            if let heap = coordinator.heapInUse, heap.pid == coordinator.pid {
                let at = heap.time - started.timeIntervalSince1970
                if at > (series[name]?.samples.last?.time ?? -.infinity) { add(name, at, heap.bytes - heap.sqlite) }
                sqlitePeak = max(sqlitePeak, heap.sqlite)
            }
        }
        // Each host's pid namespace and its agent's pid there.
        var wanted: [String: (host: String, pid: Int)] = [:]
        for h in testbed.hosts {
            guard let initPid = testbed.initPid(h), let ns = Self.link("/proc/\(initPid)/ns/pid"),
                  let text = try? LocalFile.read("/proc/\(initPid)/root\(roots(h))/agent.lock"),
                  let pid = Int(String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else { continue }
            wanted[ns] = (h, pid)
        }
        guard !wanted.isEmpty, let dir = opendir("/proc") else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let outer = Int(name), let ns = Self.link("/proc/\(outer)/ns/pid"), let want = wanted[ns],
                  let b = try? LocalFile.read("/proc/\(outer)/status") else { continue }
            let status = String(decoding: b, as: UTF8.self)
            guard let nspid = status.split(separator: "\n").first(where: { $0.hasPrefix("NSpid:") })?.split(whereSeparator: \.isWhitespace).last,
                  Int(nspid) == want.pid else { continue }
            add("agent \(want.host) pid \(want.pid)", t, Memory.anonymous(status))
        }
    }

    private static func link(_ path: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBufferPointer { readlink(path, UnsafeMutableRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), 255) }
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }

    /// The least-squares trend of each series over the last half of the run (from half the time
    /// of the last sample), leaving out each process's first `warmUp` s (a process started
    /// late in the run, by a fault, fills its caches then), for series with at least
    /// `minSamples` samples there spanning at least `minSpan` s; the others are counted in `short`.
    func trends(minSamples: Int = 10, minSpan: Double = 30, warmUp: Double = 60) -> (trends: [Trend], short: Int) {
        let end = series.values.compactMap { $0.samples.last?.time }.max() ?? 0
        var out: [Trend] = [], short = 0
        for s in series.values.sorted(by: { $0.name < $1.name }) {
            let from = max(end / 2, (s.samples.first?.time ?? 0) + warmUp)
            let late = s.samples.filter { $0.time >= from }
            guard late.count >= minSamples, let a = late.first, let z = late.last, z.time - a.time >= minSpan else {
                short += 1
                continue
            }
            let n = Double(late.count)
            let mx = late.map(\.time).reduce(0, +) / n
            let my = late.map { Double($0.bytes) }.reduce(0, +) / n
            let sxy = late.map { ($0.time - mx) * (Double($0.bytes) - my) }.reduce(0, +)
            let sxx = late.map { ($0.time - mx) * ($0.time - mx) }.reduce(0, +)
            let bytesPerSecond = sxx > 0 ? sxy / sxx : 0
            let mib = 1_048_576.0
            out.append(Trend(name: s.name, count: late.count, span: z.time - a.time, slope: bytesPerSecond * 3600 / mib,
                             growth: bytesPerSecond * (z.time - a.time) / mib, first: a.bytes, last: z.bytes))
        }
        return (out, short)
    }
}
