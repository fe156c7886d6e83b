import DroverCore
import Foundation

/// Output helpers shared by the commands.
enum Terminal {
    /// Prints `drover: error: …` to stderr, one line per line of `message`.
    static func error(_ message: String) {
        let lines = message.split(separator: "\n", omittingEmptySubsequences: false)
        var text = "drover: error: " + (lines.first.map(String.init) ?? "") + "\n"
        for line in lines.dropFirst() { text += "  " + line + "\n" }
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Prints `drover: warning: …` to stderr.
    static func warning(_ message: String) {
        FileHandle.standardError.write(Data("drover: warning: \(message)\n".utf8))
    }

    /// Prints `drover: note: …` to stderr.
    static func note(_ message: String) {
        FileHandle.standardError.write(Data("drover: note: \(message)\n".utf8))
    }

    /// The text under a table explaining what went wrong: a blank line, then each message
    /// with its continuation lines indented.
    static func problems(_ messages: [String]) -> String {
        guard !messages.isEmpty else { return "" }
        var text = "\n"
        for message in messages {
            let lines = message.split(separator: "\n", omittingEmptySubsequences: false)
            text += "\n\(lines.first ?? "")"
            for line in lines.dropFirst() { text += "\n    \(line)" }
        }
        return text
    }

    /// "16 GiB", "512 MiB".
    static func bytes(_ n: UInt64?) -> String {
        guard let n else { return "-" }
        let gib = Double(n) / 1_073_741_824
        if gib >= 1 { return gib >= 10 ? "\(Int(gib.rounded())) GiB" : String(format: "%.1f GiB", gib) }
        return "\(n / 1_048_576) MiB"
    }

    /// Pretty JSON with sorted keys.
    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
