import DroverCore

/// An event the coordinator can notify about (`notify[].events`; docs/inventory.md, "Notifications").
public enum NotifyEvent: String, Codable, Sendable, CaseIterable {
    case batchFinished = "batch_finished"
    case jobFailed = "job_failed"
    case hostDown = "host_down"
    case hostQuarantined = "host_quarantined"
    case approvalWaiting = "approval_waiting"
    case approvalEscalated = "approval_escalated"
}

/// Where one kind of notification goes: a local command (the event JSON on its stdin, no
/// shell) or an HTTP URL (the event POSTed as JSON), for the events it names.
public struct NotifyTarget: Codable, Sendable, Equatable {
    /// Program and arguments, exec'd without a shell; nil when `url` is set.
    public var command: [String]?
    /// `http://host[:port]/path`; nil when `command` is set.
    public var url: String?
    /// The events delivered; empty means all.
    public var events: [NotifyEvent]
    /// Seconds one delivery may take before it counts as failed.
    public var timeout: Double = 10
    /// Deliveries in all (the first included) before the notification is given up.
    public var attempts: Int = 5

    public init(command: [String]? = nil, url: String? = nil, events: [NotifyEvent] = [], timeout: Double = 10, attempts: Int = 5) {
        self.command = command
        self.url = url
        self.events = events
        self.timeout = timeout
        self.attempts = attempts
    }

    /// Whether this target takes `event`.
    public func wants(_ event: NotifyEvent) -> Bool { events.isEmpty || events.contains(event) }

    /// How the target is shown in messages.
    public var label: String { url ?? (command ?? []).joined(separator: " ") }

    /// Reads `notify`: one target object or an array of them; reports problems at their paths.
    public static func readList(_ node: JSONNode, path: String, diagnostics d: ConfigDiagnostics) -> [NotifyTarget] {
        let items = node.arrayValue ?? [node]
        var out: [NotifyTarget] = []
        for (i, item) in items.enumerated() {
            let p = node.arrayValue == nil ? path : "\(path)[\(i)]"
            if let t = read(item, path: p, diagnostics: d) { out.append(t) }
        }
        return out
    }

    static func read(_ node: JSONNode, path: String, diagnostics d: ConfigDiagnostics) -> NotifyTarget? {
        guard var r = ObjectReader(node, path: path, diagnostics: d) else { return nil }
        var t = NotifyTarget()
        var ok = true
        if let n = r.node("command") {
            if let a = n.stringArray, !a.isEmpty, !a.contains(where: { $0.utf8.contains(0) }) { t.command = a } else {
                d.report("must be a non-empty array of strings (program first); it runs without a shell, the event JSON on its stdin", path: r.childPath("command"), at: n.position)
                ok = false
            }
        }
        if let u = r.string("url") {
            if HTTPURL(u) != nil { t.url = u } else {
                d.report("must be an http:// URL such as \"http://localhost:8080/drover\" (https is not supported: use a local relay or a command)", path: r.childPath("url"), at: r.node("url")?.position)
                ok = false
            }
        }
        if t.command != nil && t.url != nil {
            d.report("give `command` or `url`, not both (use two entries for both)", path: path, at: node.position)
            ok = false
        } else if ok && t.command == nil && t.url == nil {
            d.report("needs `command` (an array: program and arguments) or `url` (http://…)", path: path, at: node.position)
            ok = false
        }
        if let n = r.node("events") {
            let names = NotifyEvent.allCases.map(\.rawValue).joined(separator: ", ")
            if let items = n.arrayValue {
                for (i, item) in items.enumerated() {
                    if let e = item.stringValue.flatMap(NotifyEvent.init(rawValue:)) { t.events.append(e) } else {
                        d.report("unknown event; use one of \(names)", path: "\(r.childPath("events"))[\(i)]", at: item.position)
                        ok = false
                    }
                }
            } else {
                d.report("must be an array of events: \(names)", path: r.childPath("events"), at: n.position)
                ok = false
            }
        }
        if let n = r.node("timeout") {
            if let v = n.doubleValue ?? n.stringValue.flatMap(Durations.parse), v > 0 { t.timeout = v } else {
                d.report("must be a positive duration: seconds, or \"10s\", \"1m\"", path: r.childPath("timeout"), at: n.position)
                ok = false
            }
        }
        if let n = r.int("attempts") {
            if n >= 1 { t.attempts = n } else {
                d.report("must be 1 or more (deliveries in all)", path: r.childPath("attempts"), at: r.node("attempts")?.position)
                ok = false
            }
        }
        r.finish()
        return ok ? t : nil
    }
}

/// A parsed `http://` URL (the only scheme notifications use).
public struct HTTPURL: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// The path with its query, starting with `/`.
    public var target: String

    public init?(_ text: String) {
        guard text.hasPrefix("http://") else { return nil }
        let rest = text.dropFirst(7)
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        var target = String(rest.dropFirst(authority.count))
        if target.isEmpty { target = "/" } else if target.hasPrefix("?") { target = "/" + target }
        guard !authority.isEmpty, !authority.contains("@"), !target.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" }) else { return nil }
        var host = String(authority)
        var port = 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") { guard let p = Int(after.dropFirst()) else { return nil }; port = p } else if !after.isEmpty { return nil }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]) else { return nil }
            port = p
            host = String(host[..<colon])
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
        self.host = host
        self.port = port
        self.target = target
    }
}
