import DroverCoordinator
import Foundation

/// Small helpers for server-rendered HTML: everything from the journal goes through `escape`.
enum HTML {
    /// Text made safe for element content and quoted attribute values.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// A URL path or query component.
    static func component(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? ""
    }

    /// A table with a header row; cells are HTML already.
    static func table(_ header: [String], _ rows: [[String]], id: String? = nil) -> String {
        var t = "<div class=\"scroll\"><table\(id.map { " id=\"\($0)\"" } ?? "")><thead><tr>"
        t += header.map { "<th scope=\"col\">\(escape($0))</th>" }.joined() + "</tr></thead><tbody>"
        for r in rows { t += "<tr>" + r.map { "<td>\($0)</td>" }.joined() + "</tr>" }
        if rows.isEmpty { t += "<tr><td colspan=\"\(header.count)\" class=\"none\">none</td></tr>" }
        return t + "</tbody></table></div>"
    }

    /// A state as a word with a symbol (never colour alone) and a class for its colour.
    static func state(_ s: String) -> String {
        let symbol: String
        switch s {
        case "up", "succeeded", "running": symbol = s == "running" ? "▶" : "✓"
        case "down", "failed", "lost", "untrusted": symbol = "✕"
        case "suspect", "waiting", "held", "queued", "dispatched", "starting", "accepted": symbol = "…"
        case "cancelled", "quarantined", "skipped": symbol = "⊘"
        case "compensating", "compensated": symbol = "↩"
        case "compensation_failed": symbol = "↩✕"
        default: symbol = "•"
        }
        return "<span class=\"st st-\(escape(s))\">\(symbol) \(escape(s))</span>"
    }

    /// A time of day (UTC) for a table cell, with the full time as its title.
    static func time(_ t: Double?) -> String {
        guard let t else { return "-" }
        let d = Date(timeIntervalSince1970: t)
        let f = ISO8601DateFormatter()
        let full = f.string(from: d)
        return "<time datetime=\"\(full)\" title=\"\(full)\">\(full.dropFirst(11).prefix(8))</time>"
    }

    /// An age that the page's script keeps ticking (`data-at`); readable without it.
    static func age(_ t: Double?, now: Double) -> String {
        guard let t else { return "-" }
        return "<span data-at=\"\(t)\">\(duration(max(0, now - t))) ago</span>"
    }

    static func duration(_ s: Double) -> String {
        if s < 60 { return String(format: "%.0fs", s) }
        if s < 3600 { return "\(Int(s) / 60)m\(String(format: "%02d", Int(s) % 60))s" }
        return "\(Int(s) / 3600)h\(String(format: "%02d", Int(s) % 3600 / 60))m"
    }

    static func bytes(_ n: Int?) -> String {
        guard let n else { return "-" }
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
    }

    static func exit(_ code: Int?, _ signal: String?) -> String {
        code.map { "exit \($0)" } ?? signal.map { "SIG\(escape($0))" } ?? "-"
    }

    static func jobLink(_ j: JobRecord) -> String {
        "<a href=\"/jobs/\(j.id)\">\(j.id)</a>"
    }
}
