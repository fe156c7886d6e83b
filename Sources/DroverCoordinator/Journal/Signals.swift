/// Signal names (as the agent reports them, `TERM`, `KILL`) and their Linux numbers.
public enum Signals {
    static let names: [String: Int32] = ["HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
                                         "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "XCPU": 24, "XFSZ": 25]

    /// The number of `TERM`, `SIGTERM` or `15`.
    public static func number(_ name: String) -> Int32? {
        names[name.hasPrefix("SIG") ? String(name.dropFirst(3)) : name] ?? Int32(name)
    }
}
