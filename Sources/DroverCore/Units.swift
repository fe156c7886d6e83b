/// Durations and sizes as people write them on a command line or in a batch file.
public enum Durations {
    /// "90" or "90s" → 90; "15m", "2h", "1d", "1.5h", "250ms".
    public static func parse(_ text: String) -> Double? {
        if text.hasSuffix("ms") { return Double(text.dropLast(2)).map { $0 / 1000 } }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let last = text.last, let unit = units[last] { return Double(text.dropLast()).map { $0 * unit } }
        return Double(text)
    }

    /// "512M", "8G", "8GiB", "1T", "1000" → bytes (binary units).
    public static func parseSize(_ text: String) -> UInt64? {
        var t = text.uppercased()
        for suffix in ["IB", "B"] where t.hasSuffix(suffix) && t.count > suffix.count { t.removeLast(suffix.count); break }
        let units: [Character: Double] = ["K": 1024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]
        if let last = t.last, let unit = units[last] { return Double(t.dropLast()).map { UInt64($0 * unit) } }
        return UInt64(t)
    }

    /// 75 → "1:15", 3725 → "1:02:05".
    public static func clock(_ seconds: Double) -> String {
        let s = max(0, Int(seconds.rounded()))
        let (h, m, r) = (s / 3600, s / 60 % 60, s % 60)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return h > 0 ? "\(h):\(two(m)):\(two(r))" : "\(m):\(two(r))"
    }
}
