import DroverCore

/// Names one attempt of one job: `job/attempt`, also its folder under `attempts/`.
public struct AttemptID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var job: String
    public var attempt: Int

    public init(job: String, attempt: Int) {
        self.job = job
        self.attempt = attempt
    }

    /// Parses `job/attempt`.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let n = Int(parts[1]), n > 0, AttemptID.isValidJob(String(parts[0])) else { return nil }
        self.init(job: String(parts[0]), attempt: n)
    }

    public var description: String { "\(job)/\(attempt)" }

    public static func < (a: AttemptID, b: AttemptID) -> Bool {
        (a.job, a.attempt) < (b.job, b.attempt)
    }

    /// Job ids become folder names: letters, digits, `-_.`, not starting with `.` or `-`, at most 128.
    public static func isValidJob(_ s: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 128, !s.hasPrefix("."), !s.hasPrefix("-") else { return false }
        return s.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "-" || c == "_" || c == "."
        }
    }
}
