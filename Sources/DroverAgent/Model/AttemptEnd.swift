import DroverCore

/// Recording how an attempt ended: `result.json` first, then the final transition, so a
/// final state always has a result. The shim does it for the job it ran; the agent for an
/// attempt whose shim vanished, and to rebuild a `result.json` a power loss took.
enum AttemptEnd {
    /// The text of `result.json`: job, attempt, reason, then the end's fields (a JSON object's text).
    static func resultText(_ id: AttemptID, reason: String, fields: String) -> String {
        var o = JSONObject()
        o.set("job", id.job)
        o.set("attempt", id.attempt)
        o.set("reason", reason)
        return o.text.dropLast() + (fields == "{}" ? "}" : "," + fields.dropFirst())
    }

    /// Writes `result.json` (its readable copy; not fsynced) and the final transition (fsynced:
    /// the durable record, which carries every field).
    /// `after`: the last transition, when the caller knows it (see `Transitions.append`).
    static func record(_ reason: AttemptState, fields: JSONObject, dir: StateDirectory, id: AttemptID,
                       after known: (n: Int, state: AttemptState)? = nil) throws(AgentError) {
        let text = resultText(id, reason: reason.rawValue, fields: fields.text)
        do { try AtomicFile.write(Array((text + "\n").utf8), to: dir.resultFile(id), durable: false) } catch { throw .system(error) }
        try Transitions.append(reason, to: dir.transitionsFile(id), fields: fields, after: known)
    }
}
