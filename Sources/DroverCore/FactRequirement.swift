/// Host facts (a fact's value is what its command printed, e.g. `Python 3.11.2`) and what a
/// job may require of them: `>=3.11`, `<4`, `=3.9.2`, `!=…`, or presence (`*` or empty).
public enum HostFacts {
    /// Whether `name` may name a fact (and a label): letters, digits, `-`, `_`, `.`, at most 64.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name.unicodeScalars.allSatisfy {
            ($0.value < 128 && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "-" || $0 == "_" || $0 == "."
        }
    }

    /// The first version-looking word of a fact (`3.11.2` in `Python 3.11.2`, `11.9` in `11.9`), as numbers.
    public static func version(in text: String) -> [Int]? {
        var best: [Int]?
        for word in text.split(whereSeparator: { !($0.isNumber || $0 == ".") }) {
            let parts = word.split(separator: ".", omittingEmptySubsequences: false)
            guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else { continue }
            let numbers = parts.compactMap { Int($0) }
            guard numbers.count == parts.count else { continue }
            if numbers.count > 1 { return numbers }
            best = best ?? numbers
        }
        return best
    }

    /// Compares two versions part by part (a missing part counts as 0: `3.11` = `3.11.0`).
    public static func compare(_ a: [Int], _ b: [Int]) -> Int {
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? a[i] : 0, y = i < b.count ? b[i] : 0
            if x != y { return x < y ? -1 : 1 }
        }
        return 0
    }
}

/// A job's requirement on one host fact.
public struct FactRequirement: Sendable, Equatable, Codable, CustomStringConvertible {
    public enum Operator: String, Sendable, Codable, CaseIterable {
        case present = "*", atLeast = ">=", atMost = "<=", above = ">", below = "<", equal = "=", notEqual = "!="
    }

    public var fact: String
    public var op: Operator
    /// The version (or exact text, for `=` and `!=` of a value that holds no version).
    public var value: String

    public init(fact: String, op: Operator, value: String) {
        self.fact = fact
        self.op = op
        self.value = value
    }

    /// Reads `>=3.11` (or `*`, or empty for presence) for `fact`; nil with a problem when malformed.
    public static func parse(fact: String, _ text: String) -> Result<FactRequirement, RequirementError> {
        guard HostFacts.isValidName(fact) else { return .failure(RequirementError("fact name \"\(fact)\" may use only letters, digits, '-', '_', '.'")) }
        let t = text.trimmingSpaces
        if t.isEmpty || t == "*" { return .success(FactRequirement(fact: fact, op: .present, value: "")) }
        for op in [Operator.atLeast, .atMost, .notEqual, .above, .below, .equal] where t.hasPrefix(op.rawValue) {
            var rest = String(t.dropFirst(op.rawValue.count)).trimmingSpaces
            if op == .equal, rest.hasPrefix("=") { rest = String(rest.dropFirst()).trimmingSpaces }
            guard !rest.isEmpty else { break }
            if [.atLeast, .atMost, .above, .below].contains(op), HostFacts.version(in: rest) == nil {
                return .failure(RequirementError("\(fact)\(t): \(op.rawValue) needs a version such as 3.11"))
            }
            return .success(FactRequirement(fact: fact, op: op, value: rest))
        }
        return .failure(RequirementError("\(fact): \"\(text)\" is not a requirement; write >=3.11, <=2, >1, <4, =3.9, !=3.10, or * (present)"))
    }

    /// Reads `python>=3.11`, `python=3.9`, `python` (present) as given to `--require`.
    public static func parse(_ text: String) -> Result<FactRequirement, RequirementError> {
        let t = text.trimmingSpaces
        guard let i = t.firstIndex(where: { "<>=!*".contains($0) }) else { return parse(fact: t, "") }
        return parse(fact: String(t[..<i]).trimmingSpaces, String(t[i...]))
    }

    /// nil when `facts` satisfy it, else why not (for notes: `python is 3.9.2, needs >=3.11`).
    public func problem(with facts: [String: String]) -> String? {
        guard let have = facts[fact] else { return "has no fact \(fact)" }
        switch op {
        case .present:
            return nil
        case .equal, .notEqual:
            let same: Bool
            if let a = HostFacts.version(in: have), let b = HostFacts.version(in: value) { same = HostFacts.compare(a, b) == 0 }
            else { same = have.trimmingSpaces == value }
            return same == (op == .equal) ? nil : "\(fact) is \(have.trimmingSpaces), needs \(requirementText)"
        default:
            guard let a = HostFacts.version(in: have), let b = HostFacts.version(in: value) else { return "\(fact) \(JSONText.quote(have)) holds no version" }
            let c = HostFacts.compare(a, b)
            let ok = switch op { case .atLeast: c >= 0; case .atMost: c <= 0; case .above: c > 0; default: c < 0 }
            return ok ? nil : "\(fact) is \(a.map(String.init).joined(separator: ".")), needs \(requirementText)"
        }
    }

    /// `>=3.11`, or `present`.
    public var requirementText: String { op == .present ? "present" : op.rawValue + value }

    public var description: String { op == .present ? fact : fact + requirementText }
}

/// A `--require`/`require` that cannot be read.
public struct RequirementError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension String {
    /// Without leading and trailing spaces, tabs and newlines (no Foundation).
    var trimmingSpaces: String {
        let ws: Set<Character> = [" ", "\t", "\n", "\r"]
        guard let start = firstIndex(where: { !ws.contains($0) }), let end = lastIndex(where: { !ws.contains($0) }) else { return "" }
        return String(self[start...end])
    }
}
