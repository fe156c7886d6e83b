import Foundation

/// Hosts as the coordinator records them.
extension Journal {
    /// Every host the coordinator has seen, with the slots its live attempts use.
    public func hosts() throws -> [HostRecord] {
        try Self.readHosts(db)
    }

    /// The hosts table of a journal database (also for readers that must not write, like --dry-run).
    public static func readHosts(_ db: SQLiteDatabase) throws -> [HostRecord] {
        let used = try db.query("""
            SELECT a.host AS host, SUM(j.slots) AS used FROM attempts a JOIN jobs j ON j.id=a.job
            WHERE a.state IN ('dispatched','accepted','starting','running') AND a.stale=0 GROUP BY a.host
            """)
        var usedBy: [String: Int] = [:]
        for r in used { if let h = r.string("host") { usedBy[h] = r.int("used") ?? 0 } }
        return try db.query("SELECT * FROM hosts ORDER BY name").map { r in
            let name = r.string("name") ?? ""
            return HostRecord(name: name, state: r.string("state") ?? "unknown", lastSeq: r.int("last_seq") ?? 0, slots: r.int("slots"),
                              usedSlots: usedBy[name] ?? 0, agentVersion: r.string("agent_version"), agentBuild: r.string("agent_build"), heartbeatTime: r.double("heartbeat_time"),
                              heartbeatSeq: r.int("heartbeat_seq"), since: r.double("since") ?? 0, error: r.string("error"),
                              machineID: r.string("machine_id"), sameMachineAs: r.string("same_machine_as"), coordinators: r.int("coordinators"),
                              load1: r.double("load1"), memoryAvailableBytes: r.int("mem_available"), memoryTotalBytes: r.int("mem_total"))
        }
    }
}
