/// One problem found in a configuration file, pointing at the file, line, column and field path.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var position: SourcePosition?
    /// The field path, e.g. `hosts[2].slots`; empty for the document itself.
    public var path: String
    public var message: String

    public init(file: String, position: SourcePosition?, path: String, message: String) {
        self.file = file
        self.position = position
        self.path = path
        self.message = message
    }

    public var description: String {
        var s = file
        if let p = position { s += ":\(p.line):\(p.column)" }
        s += ": "
        if !path.isEmpty { s += "\(path): " }
        return s + message
    }
}

/// Collects every issue found while reading one configuration file, so all are reported at once.
public final class ConfigDiagnostics {
    public let file: String
    public private(set) var issues: [ConfigIssue] = []

    public init(file: String) { self.file = file }

    public func report(_ message: String, path: String, at position: SourcePosition?) {
        issues.append(ConfigIssue(file: file, position: position, path: path, message: message))
    }
}

/// Reads the members of one JSON object by key, checking types and reporting unknown keys.
///
/// Every accessor records the key as known; `finish()` then reports each key that was
/// never asked for, with the nearest known key as a suggestion.
public struct ObjectReader {
    public let node: JSONNode
    public let path: String
    public let diagnostics: ConfigDiagnostics
    private let members: [JSONNode.Member]
    private var known: Set<String> = []

    /// Starts reading `node` at `path`; reports and returns nil when it is not an object.
    public init?(_ node: JSONNode, path: String, diagnostics: ConfigDiagnostics) {
        guard let members = node.objectMembers else {
            diagnostics.report("must be an object, not \(node.kindDescription)", path: path, at: node.position)
            return nil
        }
        self.node = node
        self.path = path
        self.diagnostics = diagnostics
        self.members = members
        var seen: [String: SourcePosition] = [:]
        for m in members {
            if let first = seen[m.key] {
                diagnostics.report(
                    "duplicate key (first written at line \(first.line)); keep one",
                    path: Self.join(path, m.key), at: m.keyPosition)
            } else {
                seen[m.key] = m.keyPosition
            }
        }
    }

    /// The field path of a member, e.g. `hosts[1].port`.
    public func childPath(_ key: String) -> String { Self.join(path, key) }

    static func join(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    /// The raw node of a member, marking the key as known; an explicit `null` counts as absent.
    public mutating func node(_ key: String) -> JSONNode? {
        known.insert(key)
        guard let n = members.first(where: { $0.key == key })?.value else { return nil }
        if case .null = n.value { return nil }
        return n
    }

    public mutating func string(_ key: String) -> String? {
        guard let n = node(key) else { return nil }
        if let s = n.stringValue { return s }
        diagnostics.report("must be a string, not \(n.kindDescription)", path: childPath(key), at: n.position)
        return nil
    }

    public mutating func bool(_ key: String) -> Bool? {
        guard let n = node(key) else { return nil }
        if let b = n.boolValue { return b }
        diagnostics.report("must be true or false, not \(n.kindDescription)", path: childPath(key), at: n.position)
        return nil
    }

    public mutating func int(_ key: String) -> Int? {
        guard let n = node(key) else { return nil }
        if let i = n.intValue { return i }
        if case .number(let text) = n.value {
            diagnostics.report("must be a whole number, not \(text)", path: childPath(key), at: n.position)
        } else {
            diagnostics.report("must be a whole number, not \(n.kindDescription)", path: childPath(key), at: n.position)
        }
        return nil
    }

    public mutating func double(_ key: String) -> Double? {
        guard let n = node(key) else { return nil }
        if let d = n.doubleValue { return d }
        diagnostics.report("must be a number, not \(n.kindDescription)", path: childPath(key), at: n.position)
        return nil
    }

    /// A string-to-string map such as `labels` or `env`.
    public mutating func stringMap(_ key: String) -> [String: String]? {
        guard let n = node(key) else { return nil }
        guard let members = n.objectMembers else {
            diagnostics.report("must be an object of strings, not \(n.kindDescription)", path: childPath(key), at: n.position)
            return nil
        }
        var out: [String: String] = [:]
        for m in members {
            let p = Self.join(childPath(key), m.key)
            if out[m.key] != nil {
                diagnostics.report("duplicate key; keep one", path: p, at: m.keyPosition)
            } else if let s = m.value.stringValue {
                out[m.key] = s
            } else {
                diagnostics.report("must be a string, not \(m.value.kindDescription) (quote numbers: \"10.4\")", path: p, at: m.value.position)
            }
        }
        return out
    }

    /// Reports every key not asked for, suggesting the nearest known one.
    public func finish() {
        for m in members where !known.contains(m.key) {
            var message = "unknown key"
            if let s = Suggestion.nearest(to: m.key, among: known.sorted()) {
                message += "; did you mean `\(s)`?"
            } else {
                message += "; known keys: " + known.sorted().joined(separator: ", ")
            }
            diagnostics.report(message, path: childPath(m.key), at: m.keyPosition)
        }
    }
}

/// Finds the closest word to a misspelling, by edit distance.
public enum Suggestion {
    /// The candidate nearest to `word`, when one is near enough to be a likely typo.
    public static func nearest(to word: String, among candidates: [String]) -> String? {
        let lower = word.lowercased()
        var best: (String, Int)?
        for c in candidates {
            let d = distance(lower, c.lowercased())
            if best == nil || d < best!.1 { best = (c, d) }
        }
        guard let (candidate, d) = best else { return nil }
        let limit = max(2, word.count / 3)
        if d <= limit { return candidate }
        if candidate.lowercased().hasPrefix(lower) || lower.hasPrefix(candidate.lowercased()) { return candidate }
        return nil
    }

    /// Levenshtein distance, counting a swap of two neighbours as one edit.
    public static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev2 = [Int](repeating: 0, count: b.count + 1)
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    cur[j] = min(cur[j], prev2[j - 2] + 1)
                }
            }
            (prev2, prev, cur) = (prev, cur, prev2)
        }
        return prev[b.count]
    }
}
