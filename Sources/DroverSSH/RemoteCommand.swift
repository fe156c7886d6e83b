/// How a POSIX shell line reaches a host whatever the login user's shell is, and how Drover
/// tells what its start-up files print from what the command prints.
///
/// sshd runs an exec request as `$SHELL -c REQUEST`, so the request must mean the same to
/// `sh`, `bash`, `dash`, `zsh`, `tcsh`/`csh` and `fish`. The request Drover sends is
///
///     exec /bin/sh -c 'exec /bin/sh -c "$(printf "$1")"' drover 'ENCODED'
///
/// Every shell reads that line as the same words: `exec`, a path, plain words and two
/// single-quoted strings that contain no `'`, `\\` (except before digits), `!`, `%` or newline
/// — the only characters single quotes treat differently in those shells. `ENCODED` is the
/// script with every other byte written as a 3-digit octal escape (`\\047` for `'`), which
/// `printf` turns back into the script; the inner `sh -c` then runs it exactly as
/// `sh -c SCRIPT` would, with the channel's stdin, stdout and stderr.
///
/// The script first prints `marker` on stdout and on stderr. Whatever the shell's start-up
/// files (`.bashrc`, `config.fish`, `.tcshrc`, `module load` lines…) printed comes before
/// it and is dropped by `PreambleFilter`; if the marker never comes, the command did not run.
public enum RemoteCommand {
    /// The line that separates the start-up files' output from the command's.
    public static let marker: [UInt8] = [0x1E] + Array("drover-begin".utf8) + [0x1E, 0x0A]

    /// The exec request that runs `script` with /bin/sh under any login shell.
    public static func wrap(_ script: String) -> String {
        let begin = "printf '\u{1E}drover-begin\u{1E}\\n'"
        let framed = "\(begin); \(begin) >&2\n" + script
        return "exec /bin/sh -c 'exec /bin/sh -c \"$(printf \"$1\")\"' drover '" + encode(framed) + "'"
    }

    /// Bytes that mean themselves inside single quotes in every shell and in a `printf` format.
    private static let plain: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 /._,:=+@-\"$&|;<>()*?[]{}#~^`".utf8 {
            table[Int(b)] = true
        }
        return table
    }()

    /// The script as `printf` format text: plain bytes as they are, every other byte `\NNN`.
    static func encode(_ script: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(script.utf8.count + script.utf8.count / 4)
        let digits = Array("01234567".utf8)
        for b in script.utf8 {
            if plain[Int(b)] {
                out.append(b)
            } else {
                out += [UInt8(ascii: "\\"), digits[Int(b >> 6)], digits[Int((b >> 3) & 7)], digits[Int(b & 7)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Drops what comes before `RemoteCommand.marker` on one output stream of a wrapped command.
struct PreambleFilter {
    /// Whether the marker has passed: from then on every byte is the command's.
    private(set) var found = false
    /// The first bytes the start-up files printed (for error messages), at most `keep`.
    private(set) var preamble: [UInt8] = []
    /// Bytes not yet known to be before the marker (a marker may be split across reads).
    private var pending: [UInt8] = []
    private let keep = 2048

    /// Returns the part of `bytes` that belongs to the command.
    mutating func feed(_ bytes: [UInt8]) -> [UInt8] {
        if found { return bytes }
        pending += bytes
        let marker = RemoteCommand.marker
        if let at = Self.index(of: marker, in: pending) {
            remember(pending[..<at])
            let rest = Array(pending[(at + marker.count)...])
            pending = []
            found = true
            return rest
        }
        // Keep only a tail that could be the start of a split marker.
        let tail = max(0, pending.count - (marker.count - 1))
        if tail > 0 {
            remember(pending[..<tail])
            pending.removeFirst(tail)
        }
        return []
    }

    /// What arrived without a marker, for an error message (at most `keep` bytes).
    var unframed: [UInt8] { Array((preamble + pending).prefix(keep)) }

    private mutating func remember(_ bytes: ArraySlice<UInt8>) {
        if preamble.count < keep { preamble += bytes.prefix(keep - preamble.count) }
    }

    static func index(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count, let first = needle.first else { return nil }
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
