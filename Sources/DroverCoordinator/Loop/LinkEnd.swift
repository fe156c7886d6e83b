import DroverProtocol

/// How a host's link (`drover-agent link`) ended, as `HostLink` judges what to do next.
struct LinkEnd: Sendable, Equatable {
    /// Why it ended, for the log and the host's error.
    var reason: String
    /// Whether the agent said hello first (the link worked for a while).
    var greeted = false
    /// The agent's stderr at the end, when it exited.
    var stderr = ""
    /// The protocol the agent said it speaks, when it is not this drover's.
    var agentProtocol: Int? = nil

    /// When the agent cannot speak to this drover at all — it has no `link` command (an agent
    /// older than the link) or speaks another protocol — the one message that says so and what
    /// to do; nil for an end that a reconnect may cure. Such an agent is what the deploy found
    /// up to date: the agent binary drover deploys (its catalog) is of another version than
    /// drover itself, e.g. a `drover` rebuilt without its agent.
    static func incompatibility(_ end: LinkEnd, host: String, build: String?) -> String? {
        guard !end.greeted else { return nil }
        let what: String
        if let p = end.agentProtocol {
            what = "it speaks protocol \(p) and this drover speaks \(WireProtocol.version)"
        } else if end.stderr.contains("unknown command \"link\"") || end.stderr.contains("unknown command 'link'") {
            what = "it has no `link` command (it is older than this drover)"
        } else {
            return nil
        }
        return "the agent on \(host) (build \(build ?? "?")) cannot serve this drover: \(what). It is the agent drover deploys, "
            + "so the agent binary in drover's catalog is of another version than drover: install both from one build "
            + "(scripts/install), or rebuild the agent (scripts/static-agent). No job goes to \(host) meanwhile; "
            + "trying again every \(Int(HostLink.incompatibleRetry)) s"
    }
}
