import DroverCore
#if canImport(Glibc)
import Glibc
#endif

/// Formatting and measuring helpers shared by the benchmarks.
protocol BenchFigures {}

extension BenchFigures {
    func row(_ what: String, _ value: String, aim: String) -> String {
        what.padding(36) + value.padding(14) + aim
    }

    func ms(_ s: Double) -> String { "\((s * 10_000).rounded() / 10) ms" }

    func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))]
    }

    /// Resident set size of a process, bytes (Linux).
    func rss(_ pid: Int) -> Int {
        guard let b = try? LocalFile.read("/proc/\(pid)/status") else { return 0 }
        for line in String(decoding: b, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 } ?? 0
        }
        return 0
    }

    /// User + system CPU seconds of a process so far (Linux).
    func cpuSeconds(_ pid: Int) -> Double {
        guard let b = try? LocalFile.read("/proc/\(pid)/stat") else { return 0 }
        let text = String(decoding: b, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }

    func readNode(_ path: String) -> JSONNode? {
        guard let b = try? LocalFile.read(path) else { return nil }
        return try? JSONParser.parse(b)
    }

    /// Runs a program and waits for it; returns its exit status.
    func shell(_ argv: [String]) -> Int32 {
        (try? ChildProcess.run(argv))?.status ?? -1
    }
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self + " " : self + String(repeating: " ", count: n - count) }
}
