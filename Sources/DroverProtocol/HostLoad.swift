import DroverCore

/// A host's load and memory as its agent samples them for each heartbeat: the figures the
/// dashboard, the API and `/metrics` show beside the heartbeat's age.
///
/// In the heartbeat file (docs/state-format.md): `"load":[1min,5min,15min]`,
/// `"mem_available_bytes"` and `"mem_total_bytes"`; each is null when the platform does not say.
public struct HostLoad: Sendable, Equatable {
    /// Load averages over 1, 5 and 15 minutes (runnable and uninterruptible tasks).
    public var load1: Double?
    public var load5: Double?
    public var load15: Double?
    /// Memory available to new work without swapping (Linux: `MemAvailable`).
    public var memoryAvailableBytes: UInt64?
    /// Physical memory.
    public var memoryTotalBytes: UInt64?

    public init(load1: Double? = nil, load5: Double? = nil, load15: Double? = nil, memoryAvailableBytes: UInt64? = nil, memoryTotalBytes: UInt64? = nil) {
        self.load1 = load1
        self.load5 = load5
        self.load15 = load15
        self.memoryAvailableBytes = memoryAvailableBytes
        self.memoryTotalBytes = memoryTotalBytes
    }

    /// Adds the heartbeat's load and memory members to `o`.
    public func write(into o: inout JSONObject) {
        let loads = [load1, load5, load15].compactMap { $0 }
        o.set("load", raw: loads.count == 3 ? "[" + loads.map(JSONText.number).joined(separator: ",") + "]" : "null")
        o.set("mem_available_bytes", memoryAvailableBytes)
        o.set("mem_total_bytes", memoryTotalBytes)
    }

    /// The load and memory a heartbeat carries (fields it lacks, as an older agent's, are nil).
    public init(heartbeat hb: JSONNode) {
        let loads = hb["load"]?.arrayValue?.compactMap(\.doubleValue) ?? []
        self.init(load1: loads.count > 0 ? loads[0] : nil, load5: loads.count > 1 ? loads[1] : nil, load15: loads.count > 2 ? loads[2] : nil,
                  memoryAvailableBytes: hb["mem_available_bytes"]?.doubleValue.flatMap { $0 >= 0 ? UInt64($0) : nil },
                  memoryTotalBytes: hb["mem_total_bytes"]?.doubleValue.flatMap { $0 >= 0 ? UInt64($0) : nil })
    }
}
