import DroverCore

/// The batch-file fields of sagas and approval SLAs: a job's `compensate`, and a gate's
/// `escalate_after` and `on_timeout` (docs/batches.md).
extension BatchReader {
    /// Reads `escalate_after`, `on_timeout` and (not in `defaults`) `compensate` into `f`.
    mutating func readSagaFields(_ r: inout ObjectReader, into f: inout Fields, isDefaults: Bool) {
        let p = r.path
        if let n = r.node("escalate_after") { f.request.escalateAfter = duration(n, path: "\(p).escalate_after") }
        if let a = r.string("on_timeout") {
            if let v = ApprovalTimeoutAction(rawValue: a) { f.request.onTimeout = v } else {
                diagnostics.report("must be \"wait\", \"approve\" or \"fail\" (the default)", path: "\(p).on_timeout", at: r.node("on_timeout")?.position)
            }
        }
        if let n = r.node("compensate"), !isDefaults { f.request.compensate = compensation(n, path: "\(p).compensate", of: f.request) }
    }

    /// A job's `compensate`: the fields of a job minus those that tie it into the batch; env,
    /// placement and cwd default to the job's own.
    private mutating func compensation(_ node: JSONNode, path: String, of job: JobRequest) -> Compensation? {
        guard var r = ObjectReader(node, path: path, diagnostics: diagnostics) else { return nil }
        for k in Self.notInCompensation where r.node(k) != nil {
            diagnostics.report("a compensation cannot have `\(k)`: it runs after the batch failed, on its own", path: r.childPath(k), at: r.node(k)?.position)
        }
        var f = Fields()
        f.request.argv = nil
        f.request.env = job.env
        f.request.host = job.host
        f.request.labels = job.labels
        f.request.cwd = job.cwd
        readFields(&r, into: &f, isDefaults: false)
        r.finish()
        if !f.hasCommand {
            diagnostics.report("needs `argv` (an array: program and arguments) or `shell` (a /bin/sh line)", path: path, at: node.position)
            return nil
        }
        return Compensation(f.request)
    }
}
