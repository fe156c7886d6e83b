/// Seeded byte mutations for robustness tests: the same seed gives the same inputs, so a
/// failure can be replayed. Used by the tests that feed malformed files to the readers.
public struct ByteMutator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// SplitMix64.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }

    /// Tokens that tend to reach deep into JSON readers and path checks.
    static let tokens: [[UInt8]] = ["{", "}", "[", "]", "\"", ":", ",", "null", "true", "-1", "1e999", "0.5", "\\u0000", "\\ud800",
                                    "../", "/etc/passwd", "~/", "*", "\u{0}", "\u{FF}", "ü", "\"id\"", "\"after\"", "\"jobs\"", "\"hosts\""].map { Array($0.utf8) }

    /// `input` with 1–4 random edits: flip, insert, delete, duplicate a span, or splice a token.
    public mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var b = input
        for _ in 0...below(4) {
            let at = below(b.count + 1)
            switch below(5) {
            case 0 where !b.isEmpty: b[min(at, b.count - 1)] ^= UInt8(truncatingIfNeeded: 1 << below(8))
            case 1: b.insert(UInt8(truncatingIfNeeded: next()), at: at)
            case 2 where !b.isEmpty:
                let end = min(b.count, at + 1 + below(16))
                b.removeSubrange(min(at, b.count - 1)..<end)
            case 3 where at < b.count:
                let end = min(b.count, at + 1 + below(32))
                b.insert(contentsOf: Array(b[at..<end]), at: below(b.count + 1))
            default: b.insert(contentsOf: Self.tokens[below(Self.tokens.count)], at: at)
            }
        }
        return b
    }
}
