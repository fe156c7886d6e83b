import DroverCore
import Foundation

/// The saga's part of a batch report: each job's compensation, the saga's state and what is
/// left to undo when it stopped.
extension BatchReport {
    /// Jobs whose compensation the saga still owes (succeeded, with `compensate`, not compensated), in file order.
    public var leftToCompensate: [Job] {
        jobs.filter { $0.record.state == .succeeded && $0.record.request.compensate != nil && $0.record.compensation != .compensated }
    }

    /// `saga` in report.json: nil when the batch never started one.
    var sagaJSON: JSONObject? {
        guard let state = batch.saga else { return nil }
        var o = JSONObject()
        o.set("state", state)
        o.set("compensated", jobs.filter { $0.record.compensation == .compensated }.compactMap(\.record.batchJob))
        o.set("left", leftToCompensate.compactMap(\.record.batchJob))
        if state == "stopped" { o.set("resume", "drover compensate \(batch.name) --resume") }
        return o
    }

    func compensationJSON(_ j: Job) -> JSONObject? {
        guard let c = j.compensation, let state = j.record.compensation else { return nil }
        var o = JSONObject()
        o.set("state", state.rawValue)
        o.set("journal_id", c.record.id)
        o.set("job_state", c.record.state.rawValue)
        o.set("reason", c.record.reason)
        o.set("command", c.record.request.commandLine)
        o.set("host", c.record.host)
        o.set("started_at", c.attempts.first?.startedAt)
        o.set("ended_at", c.record.endedAt)
        o.set("attempts", objects: c.attempts.map(Self.attemptJSON))
        return o
    }

    /// Joblog lines of the compensations that ran (Command is `compensate JOB: …`).
    func compensationJoblogLines(from seq: Int) -> [String] {
        var lines: [String] = []
        var n = seq
        for j in jobs {
            guard let c = j.compensation, let a = c.attempts.last(where: { !$0.stale }) ?? c.attempts.last, let start = a.startedAt else { continue }
            let signal = a.signal.flatMap(Signals.number).map(String.init) ?? "0"
            let command = "compensate \(j.record.batchJob ?? String(j.record.id)) (\(j.record.compensation?.rawValue ?? "?")): " + c.record.request.commandLine
            lines.append([String(n), a.host, String(format: "%.3f", start), String(format: "%.3f", (a.endedAt ?? generatedAt) - start), "0", "0",
                          String(a.exitCode ?? -1), signal, command.replacingOccurrences(of: "\n", with: " ")].joined(separator: "\t"))
            n += 1
        }
        return lines
    }

    /// The summary's compensation lines (none without a saga).
    public var sagaSummary: [String] {
        guard let state = batch.saga else { return [] }
        var out = ["", "compensation: \(state)"]
        for j in jobs where j.record.compensation != nil {
            let c = j.compensation?.record
            out.append("  \(j.record.batchJob ?? String(j.record.id))  \(j.record.compensation!.rawValue)\(c.map { " (job \($0.id)\($0.host.map { " on \($0)" } ?? "")\($0.state == .failed ? ": \($0.reason ?? "")" : ""))" } ?? "")")
        }
        let left = leftToCompensate.compactMap(\.record.batchJob)
        if state == "stopped" {
            out.append("  stopped: still to undo \(left.joined(separator: ", ")); after a fix run `drover compensate \(batch.name) --resume`")
        } else if state == "compensating", !left.isEmpty {
            out.append("  still to undo: \(left.joined(separator: ", "))")
        }
        return out
    }
}
