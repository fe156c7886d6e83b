/// Quoting for POSIX `sh`, so an argv crosses an SSH exec (which always goes through the
/// remote login shell) byte for byte, with no expansion of `$`, backquotes, globs or spaces.
public enum ShellQuote {
    /// One argument in single quotes; an embedded `'` becomes `'\''`.
    public static func quote(_ argument: String) -> String {
        if !argument.isEmpty, argument.utf8.allSatisfy(isSafe) { return argument }
        return "'" + argument.replacing("'", with: "'\\''") + "'"
    }

    /// A whole argv as one command line.
    public static func join(_ argv: [String]) -> String {
        argv.map(quote).joined(separator: " ")
    }

    private static func isSafe(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "/"),
             UInt8(ascii: ","), UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "%"), UInt8(ascii: "+"), UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }
}
