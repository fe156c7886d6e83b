/// How long an agent keeps what its coordinators have collected, and how much disk its root
/// may use: the inventory's `retention`, passed to the agent on the link and kept in the
/// root's `retention.json` (docs/agent.md, "Retention").
public struct RetentionPolicy: Sendable, Equatable {
    /// Seconds a collected attempt's folder (and a collected event-log segment) is kept.
    public var keep: Double
    /// The root's cap in bytes; nil: 2 GiB or 5 % of the file system, whichever is smaller.
    public var maxSize: Int64?
    /// The size at which `events.log` becomes a segment of its own.
    public var segmentSize: Int64

    public static let defaultKeep: Double = 7 * 86_400
    public static let defaultSegmentSize: Int64 = 16 << 20
    public static let defaultCapBytes: Int64 = 2 << 30
    public static let defaultCapFraction = 0.05

    public init(keep: Double = RetentionPolicy.defaultKeep, maxSize: Int64? = nil, segmentSize: Int64 = RetentionPolicy.defaultSegmentSize) {
        self.keep = keep
        self.maxSize = maxSize
        self.segmentSize = segmentSize
    }

    /// The cap for a file system of `filesystemBytes` (nil: unknown).
    public func cap(filesystemBytes: Int64?) -> Int64 {
        if let maxSize { return maxSize }
        guard let fs = filesystemBytes, fs > 0 else { return Self.defaultCapBytes }
        return min(Self.defaultCapBytes, Int64(Double(fs) * Self.defaultCapFraction))
    }

    /// `retention.json`: `{"keep":SECONDS,"max_size":BYTES,"segment_size":BYTES}` (`max_size` absent: the default).
    public var json: String {
        var o = JSONObject()
        o.set("keep", keep)
        o.set("max_size", maxSize.map(Int.init))
        o.set("segment_size", Int(segmentSize))
        return o.text
    }

    /// Reads `retention.json`; fields that are missing or invalid keep their defaults.
    public static func parse(_ node: JSONNode) -> RetentionPolicy {
        var p = RetentionPolicy()
        if let k = node["keep"]?.doubleValue, k >= 0 { p.keep = k }
        if let m = node["max_size"]?.intValue, m > 0 { p.maxSize = Int64(m) }
        if let s = node["segment_size"]?.intValue, s > 0 { p.segmentSize = Int64(s) }
        return p
    }

    /// "90", "90s", "15m", "2h", "7d", "1.5h" → seconds; nil when it is not one.
    public static func duration(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
        let value: Double?
        if let last = text.last, let unit = units[last] { value = Double(text.dropLast()).map { $0 * unit } } else { value = Double(text) }
        guard let v = value, v >= 0, v.isFinite else { return nil }
        return v
    }

    /// "512M", "2G", "2GiB", "64KiB", "1000" → bytes (binary units); nil when it is not one.
    public static func size(_ text: String) -> Int64? {
        var t = text.uppercased()
        for suffix in ["IB", "B"] where t.hasSuffix(suffix) && t.count > suffix.count {
            t.removeLast(suffix.count)
            break
        }
        let units: [Character: Double] = ["K": 1024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]
        let value: Double?
        if let last = t.last, let unit = units[last] { value = Double(t.dropLast()).map { $0 * unit } } else { value = Double(t) }
        guard let v = value, v >= 1, v.isFinite, v < 9e18 else { return nil }
        return Int64(v)
    }
}
