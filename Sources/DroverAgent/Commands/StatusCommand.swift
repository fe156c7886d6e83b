import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `drover-agent status [--json]`: the agent's heartbeat and every attempt's state.
enum StatusCommand {
    static func run(_ options: inout Options) throws(AgentError) -> Int32 {
        try options.allow(["--json"])
        let dir = options.root
        let holder = AgentLock.holder(dir)
        let hb = readJSON(dir.heartbeatFile)
        var attempts: [(AttemptID, JSONNode?, JSONNode?)] = []
        for job in listDirectory(dir.attempts).sorted() {
            for n in listDirectory(dir.attempts + "/" + job).compactMap(Int.init).sorted() {
                let id = AttemptID(job: job, attempt: n)
                attempts.append((id, Transitions.read(dir.transitionsFile(id)).last, readJSON(dir.resultFile(id))))
            }
        }
        if options.flags.contains("--json") {
            var agent = JSONObject()
            agent.set("root", dir.root)
            agent.set("running", holder != nil)
            agent.set("pid", holder.map { Int($0) })
            let owner = readJSON(dir.ownerFile)
            var text = "{\"agent\":" + agent.text.dropLast() + ",\"owner\":" + (owner?.jsonText ?? "null")
            text += ",\"heartbeat\":" + (hb?.jsonText ?? "null") + "}"
            text += ",\"attempts\":[" + attempts.map { id, last, result in
                var o = JSONObject()
                o.set("job", id.job)
                o.set("attempt", id.attempt)
                o.set("state", last?["state"]?.stringValue)
                return o.text.dropLast() + ",\"result\":" + (result?.jsonText ?? "null") + "}"
            }.joined(separator: ",") + "]}"
            print(text)
            return 0
        }
        if let holder {
            let age = hb?["time"]?.doubleValue.map { wallTime() - $0 } ?? -1
            print("agent: running (pid \(holder)) in \(dir.root), version \(hb?["version"]?.stringValue ?? "?") build \(hb?["build"]?.stringValue ?? "?"), heartbeat \(age >= 0 ? JSONText.number((age * 10).rounded() / 10) + " s ago" : "missing")")
        } else {
            print("agent: not running in \(dir.root)")
        }
        if let owner = StateOwner.read(dir) {
            print("owner: \(owner.described)\(owner.isSameSystem(as: .current) ? " (this system)" : ", not this system (\(MachineIdentity.current.described))")")
        }
        if holder != nil, let list = hb?["coordinators"]?.arrayValue {
            print("coordinators with a live lease: \(list.isEmpty ? "none" : list.compactMap(\.stringValue).joined(separator: ", "))")
        }
        var rows = [["ATTEMPT", "STATE", "EXIT", "STARTED", "ENDED"]]
        for (id, last, result) in attempts {
            let exit = result?["exit_code"]?.intValue.map { "\($0)" } ?? result?["signal"]?.stringValue.map { "SIG\($0)" } ?? "-"
            rows.append([id.description, last?["state"]?.stringValue ?? "?", exit,
                         result?["started_at"]?.doubleValue.map(timeText) ?? "-", result?["ended_at"]?.doubleValue.map(timeText) ?? "-"])
        }
        print(TextTable.render(rows))
        return 0
    }

    static func timeText(_ t: Double) -> String {
        var seconds = time_t(t)
        var tm = tm()
        localtime_r(&seconds, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec))"
    }

}
