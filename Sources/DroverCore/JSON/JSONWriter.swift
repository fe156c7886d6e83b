/// Builds compact JSON text without Foundation (the agent links no ICU).
///
/// Keys keep the order they are added in, so files read well and diff well.
public struct JSONObject: Sendable {
    private var members: [(String, String)] = []

    public init() {}

    public mutating func set(_ key: String, _ value: String?) { members.append((key, value.map(JSONText.quote) ?? "null")) }
    public mutating func set(_ key: String, _ value: Int?) { members.append((key, value.map(String.init) ?? "null")) }
    public mutating func set(_ key: String, _ value: Int64?) { members.append((key, value.map(String.init) ?? "null")) }
    public mutating func set(_ key: String, _ value: UInt64?) { members.append((key, value.map(String.init) ?? "null")) }
    public mutating func set(_ key: String, _ value: Int32?) { members.append((key, value.map(String.init) ?? "null")) }
    public mutating func set(_ key: String, _ value: Bool?) { members.append((key, value.map { $0 ? "true" : "false" } ?? "null")) }
    public mutating func set(_ key: String, _ value: Double?) { members.append((key, value.map(JSONText.number) ?? "null")) }
    public mutating func set(_ key: String, _ value: [String]?) {
        members.append((key, value.map { "[" + $0.map(JSONText.quote).joined(separator: ",") + "]" } ?? "null"))
    }
    public mutating func set(_ key: String, _ value: [String: String]?) {
        guard let value else { members.append((key, "null")); return }
        var o = JSONObject()
        for k in value.keys.sorted() { o.set(k, value[k]) }
        members.append((key, o.text))
    }
    public mutating func set(_ key: String, object: JSONObject?) { members.append((key, object?.text ?? "null")) }
    /// An array of objects.
    public mutating func set(_ key: String, objects: [JSONObject]) {
        members.append((key, "[" + objects.map(\.text).joined(separator: ",") + "]"))
    }
    /// Inserts already-encoded JSON.
    public mutating func set(_ key: String, raw: String) { members.append((key, raw)) }

    /// The object as one line of JSON.
    public var text: String {
        "{" + members.map { JSONText.quote($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }
}

/// JSON string and number encoding.
public enum JSONText {
    /// A JSON string literal, escaping quotes, backslashes and control characters.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// A JSON number: integers without a fraction, others with up to 6 decimals.
    public static func number(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        let scaled = (d * 1_000_000).rounded() / 1_000_000
        return "\(scaled)"
    }
}

extension JSONNode {
    /// The member named `key` of an object.
    public subscript(key: String) -> JSONNode? {
        objectMembers?.first { $0.key == key }?.value
    }

    /// A string-to-string map, ignoring non-string values.
    public var stringMap: [String: String]? {
        guard let m = objectMembers else { return nil }
        var out: [String: String] = [:]
        for member in m { if let s = member.value.stringValue { out[member.key] = s } }
        return out
    }

    /// An array of strings, or nil when any element is not a string.
    public var stringArray: [String]? {
        guard let a = arrayValue else { return nil }
        var out: [String] = []
        for e in a {
            guard let s = e.stringValue else { return nil }
            out.append(s)
        }
        return out
    }
}

extension JSONNode {
    /// The value as compact JSON text (numbers keep their source spelling).
    public var jsonText: String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n
        case .string(let s): return JSONText.quote(s)
        case .array(let a): return "[" + a.map(\.jsonText).joined(separator: ",") + "]"
        case .object(let m): return "{" + m.map { JSONText.quote($0.key) + ":" + $0.value.jsonText }.joined(separator: ",") + "}"
        }
    }
}
