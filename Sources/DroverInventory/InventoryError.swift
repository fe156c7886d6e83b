import DroverCore

/// Why an inventory could not be loaded; every case names the file and what to do.
public enum InventoryError: Error, Sendable, CustomStringConvertible {
    /// A file named explicitly (by `--inventory` or `$DROVER_INVENTORY`) does not exist.
    case notFound(path: String, namedBy: String)
    case unreadable(SystemError)
    case syntax(file: String, JSONSyntaxError)
    /// One or more validation problems, all reported together.
    case invalid([ConfigIssue])

    public var description: String {
        switch self {
        case .notFound(let path, let namedBy):
            return "\(path): inventory file not found (named by \(namedBy)); create it (see hosts.example.json) or fix the path"
        case .unreadable(let e):
            return "cannot read inventory: \(e)"
        case .syntax(let file, let e):
            return "\(file):\(e.position.line):\(e.position.column): malformed JSON: \(e.message)"
        case .invalid(let issues):
            return issues.map(\.description).joined(separator: "\n")
        }
    }
}
