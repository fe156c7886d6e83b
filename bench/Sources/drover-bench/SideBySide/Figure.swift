import Foundation

/// One measured quantity for one tool: its samples over repeated trials, or why there are none.
struct Figure: Sendable {
    enum Better: String, Sendable { case lower, higher, zero }

    var scenario: String
    var metric: String
    var unit: String
    var tool: String
    var better: Better
    var samples: [Double]
    /// Why a tool has no figure ("never noticed within 60 s", "not applicable").
    var note: String?

    var sorted: [Double] { samples.sorted() }
    var median: Double? { quantile(0.5) }
    var p99: Double? { quantile(0.99) }
    var min: Double? { sorted.first }
    var max: Double? { sorted.last }

    func quantile(_ p: Double) -> Double? {
        let s = sorted
        guard !s.isEmpty else { return nil }
        return s[Swift.min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
    }

    /// Drover's median over this peer's median, when both exist and the peer's is not zero.
    func ratio(drover: Figure?) -> Double? {
        guard tool != "drover", better != .zero, let d = drover?.median, let p = median, p != 0 else { return nil }
        return d / p
    }
}

extension Double {
    /// A figure with about three significant digits.
    var shown: String {
        let a = abs(self)
        if a == 0 { return "0" }
        if a >= 100 { return String(format: "%.0f", self) }
        if a >= 10 { return String(format: "%.1f", self) }
        if a >= 1 { return String(format: "%.2f", self) }
        return String(format: "%.3f", self)
    }
}
