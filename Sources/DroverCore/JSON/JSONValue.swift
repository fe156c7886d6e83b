/// A line and column (both 1-based) in a source text.
public struct SourcePosition: Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// A JSON value that remembers where it was written, so errors can point at it.
public struct JSONNode: Sendable {
    /// One member of an object, in source order.
    public struct Member: Sendable {
        public var key: String
        public var keyPosition: SourcePosition
        public var value: JSONNode
    }

    public enum Value: Sendable {
        case null
        case bool(Bool)
        /// A number with its source text, so integers stay exact.
        case number(String)
        case string(String)
        case array([JSONNode])
        case object([Member])
    }

    public var value: Value
    public var position: SourcePosition

    public init(_ value: Value, at position: SourcePosition) {
        self.value = value
        self.position = position
    }

    /// The JSON type name used in error messages ("a string", "an object", …).
    public var kindDescription: String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    public var stringValue: String? {
        if case .string(let s) = value { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = value { return b }
        return nil
    }

    /// The value as an exact integer, or nil when it is not a number without fraction or exponent.
    public var intValue: Int? {
        if case .number(let text) = value { return Int(text) }
        return nil
    }

    public var doubleValue: Double? {
        if case .number(let text) = value { return Double(text) }
        return nil
    }

    public var arrayValue: [JSONNode]? {
        if case .array(let a) = value { return a }
        return nil
    }

    public var objectMembers: [Member]? {
        if case .object(let m) = value { return m }
        return nil
    }
}
