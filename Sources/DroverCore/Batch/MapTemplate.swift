/// A `drover map` command template with GNU parallel's replacement strings.
///
/// Argv mode behaves like `parallel -q`: each word is one argv entry and values go in byte for
/// byte. Shell mode behaves like plain `parallel`: the words form one `/bin/sh` line and values
/// go in shell-quoted. Checked against GNU parallel 20221122 by MapTemplateTests.
public struct MapTemplate: Sendable, Equatable {
    /// The argv words, or the one shell line when `shell` is true (`{}` appended if it had no replacement string).
    public let words: [String]
    /// Whether `words` is one `/bin/sh` line rather than an argv.
    public let shell: Bool
    private let pieces: [[TemplatePiece]]
    private let quotesValues: Bool
    /// `-N0`: no values, and `{}` expands to nothing (not to one empty value).
    private let noArguments: Bool

    /// The text `expand` leaves for `{%}`, filled in by `fillSlot`.
    private static let slotMarker = "{%}"

    /// Builds a template.
    ///
    /// In argv mode a single word holding whitespace is split like a POSIX shell simple command
    /// (quotes and backslashes, no expansion); in shell mode the words are joined with one space.
    /// With no replacement string anywhere, `{}` is appended as parallel does, unless
    /// `noArguments` (parallel's `-N0`: the jobs take no values, `{}` inserts nothing).
    public init(_ words: [String], shell: Bool, noArguments: Bool = false) throws(MapTemplateError) {
        var words = words
        if shell {
            words = [words.joined(separator: " ")]
        } else if words.count == 1, words[0].unicodeScalars.contains(where: CommandWords.isBlank) {
            words = try CommandWords.split(words[0])
        }
        var pieces = words.map(TemplatePiece.parse)
        if !noArguments, !pieces.joined().contains(where: \.isReplacement) {
            if shell { words[0] += " {}" } else { words.append("{}") }
            pieces = words.map(TemplatePiece.parse)
        }
        self.words = words
        self.shell = shell
        self.pieces = pieces
        self.noArguments = noArguments
        // parallel inserts values unquoted when the line's first word (up to a blank or `=`)
        // holds a replacement string, so that `parallel {} ::: "echo a"` runs `echo a`.
        quotesValues = shell && !TemplatePiece.leadsWithReplacement(pieces[0])
    }

    /// True when the template uses `{%}` (the slot number, known only at dispatch).
    public var usesSlot: Bool {
        pieces.contains { $0.contains(.slot) }
    }

    /// The argv (argv mode) or the one-element [line] (shell mode) for one input.
    ///
    /// `values` has one value per input source; `seq` is the 1-based job number (`{#}`).
    /// `{%}` stays as the text "{%}" for `fillSlot`. As in parallel, `{}`, `{.}`, … with several
    /// sources give one argv word per value (one space apart in a shell line).
    public func expand(_ values: [String], seq: Int) -> [String] {
        // parallel substitutes one empty value when there is none.
        let values = values.isEmpty && !noArguments ? [""] : values
        return pieces.flatMap { render($0, values, seq: seq) }
    }

    /// Replaces every `{%}` in already-expanded words by `slot`.
    ///
    /// It cannot tell the template's `{%}` from one inside an inserted value, and fills both.
    public static func fillSlot(_ words: [String], slot: Int) -> [String] {
        words.map { $0.replacing(slotMarker, with: String(slot)) }
    }

    /// The words one template word (or the shell line) becomes for one input.
    private func render(_ pieces: [TemplatePiece], _ values: [String], seq: Int) -> [String] {
        var out = [""]
        func add(_ text: String) { out[out.count - 1] += text }
        func insert(_ value: String) { add(quotesValues ? ShellQuote.quote(value) : value) }
        for piece in pieces {
            switch piece {
            case .text(let text):
                add(text)
            case .seq:
                add(String(seq))
            case .slot:
                add(Self.slotMarker)
            case .source(let position, let part):
                // A missing source gives nothing, not even '': in a shell line parallel's `{3}`
                // of two sources vanishes, in argv mode it is an empty word.
                if let value = TemplatePiece.value(at: position, in: values) { insert(part.apply(value)) }
            case .each(let part):
                for (i, value) in values.enumerated() {
                    if i > 0 {
                        if shell { add(" ") } else { out.append("") }
                    }
                    insert(part.apply(value))
                }
            }
        }
        return out
    }
}

/// Why a `drover map` template or its arguments are unusable.
public struct MapTemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, for the user.
    public var message: String
    /// The message.
    public var description: String { message }

    /// An error saying `message`.
    public init(message: String) { self.message = message }
}

/// One part of a template word: literal text or one of parallel's replacement strings.
private enum TemplatePiece: Equatable {
    case text(String)
    /// `{#}`
    case seq
    /// `{%}`
    case slot
    /// `{}`, `{.}`, `{/}`, `{//}`, `{/.}`: every source's value in turn.
    case each(PathPart)
    /// `{N}`, `{N.}`, … (1-based; negative counts from the last source).
    case source(Int, PathPart)

    var isReplacement: Bool {
        if case .text = self { return false }
        return true
    }

    /// Splits a word into text and replacement strings, scanning left to right. Anything that is
    /// not a replacement string (`{foo}`, `{1#}`, `{=…=}`, a lone brace) stays text.
    static func parse(_ word: String) -> [TemplatePiece] {
        let s = word.unicodeScalars
        var pieces: [TemplatePiece] = []
        var textStart = s.startIndex
        var i = s.startIndex
        while let open = s[i...].firstIndex(of: "{") {
            guard let close = s[open...].firstIndex(of: "}") else { break }
            guard let piece = replacement(String(s[s.index(after: open)..<close])) else {
                i = s.index(after: open)
                continue
            }
            if textStart < open { pieces.append(.text(String(s[textStart..<open]))) }
            pieces.append(piece)
            textStart = s.index(after: close)
            i = textStart
        }
        if textStart < s.endIndex { pieces.append(.text(String(s[textStart...]))) }
        return pieces
    }

    /// The replacement string whose text between the braces is `body`, if any.
    private static func replacement(_ body: String) -> TemplatePiece? {
        switch body {
        case "#": return .seq
        case "%": return .slot
        default: break
        }
        if let part = PathPart(rawValue: body) { return .each(part) }
        // `{N…}`: an optional minus, digits, then (parallel allows it) blanks before the part.
        let s = body.unicodeScalars
        let digitsStart = s.first == "-" ? s.index(after: s.startIndex) : s.startIndex
        let digitsEnd = s[digitsStart...].firstIndex { !("0"..."9").contains($0) } ?? s.endIndex
        guard digitsStart < digitsEnd else { return nil }
        let partStart = s[digitsEnd...].firstIndex { !isPerlSpace($0) } ?? s.endIndex
        guard let part = PathPart(rawValue: String(s[partStart...])) else { return nil }
        let number = String(s[..<digitsEnd])
        // parallel reads the position "0" as false, so `{0}` is `{}`; "00" and "-0" are the
        // position 0, which names no source. Too many digits for an Int name none either.
        if number == "0" { return .each(part) }
        return .source(Int(number) ?? 0, part)
    }

    /// Perl's `\s` on bytes: space, \t, \n, \v, \f, \r.
    private static func isPerlSpace(_ c: Unicode.Scalar) -> Bool {
        c == " " || ("\t"..."\r").contains(c)
    }

    /// The value of source `position` the way parallel indexes its Perl array: N > 0 is the Nth,
    /// N ≤ 0 is count + N, and a still-negative index counts from the end once more
    /// (`{-3}` of two sources is the last one).
    static func value(at position: Int, in values: [String]) -> String? {
        var i = position > 0 ? position - 1 : values.count + position
        if i < 0 { i += values.count }
        return values.indices.contains(i) ? values[i] : nil
    }

    /// Whether a replacement string comes before the first blank or `=` of the line.
    static func leadsWithReplacement(_ pieces: [TemplatePiece]) -> Bool {
        for piece in pieces {
            guard case .text(let text) = piece else { return true }
            if text.unicodeScalars.contains(where: { $0 == "=" || CommandWords.isBlank($0) }) { return false }
        }
        return false
    }
}

/// The part of a value that a replacement string selects. Works on Unicode scalars, as parallel
/// works on bytes: a combining mark after a dot does not hide the dot.
private enum PathPart: String {
    case whole = ""
    case noExtension = "."
    case basename = "/"
    case dirname = "//"
    case basenameNoExtension = "/."

    func apply(_ value: String) -> String {
        switch self {
        case .whole: value
        case .noExtension: Self.dropExtension(value)
        case .basename: Self.basename(value)
        case .dirname: Self.dirname(value)
        case .basenameNoExtension: Self.dropExtension(Self.basename(value))
        }
    }

    /// parallel's `s:\.[^/.]*$::`: from the last dot on, unless a slash follows it. So `.bashrc`
    /// gives "" and `a.` gives "a", while `a.b/c` stays.
    private static func dropExtension(_ value: String) -> String {
        let s = value.unicodeScalars
        guard let dot = s.lastIndex(of: "."), !s[dot...].contains("/") else { return value }
        return String(s[..<dot])
    }

    /// parallel's `s:.*/::`: everything after the last slash, so `dir/` gives "".
    private static func basename(_ value: String) -> String {
        let s = value.unicodeScalars
        guard let slash = s.lastIndex(of: "/") else { return value }
        return String(s[s.index(after: slash)...])
    }

    /// Perl's File::Basename `dirname`, which is POSIX dirname: "" and `dir/` give ".", `//`
    /// gives "/", `a//b` gives "a".
    private static func dirname(_ value: String) -> String {
        guard !value.isEmpty else { return "." }
        let path = dropTrailingSlashes(value.unicodeScalars[...])
        guard !path.isEmpty else { return "/" }
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let parent = dropTrailingSlashes(path[..<slash])
        return parent.isEmpty ? "/" : String(parent)
    }

    private static func dropTrailingSlashes(_ path: Substring.UnicodeScalarView) -> Substring.UnicodeScalarView {
        var path = path
        while path.last == "/" { path = path.dropLast() }
        return path
    }
}

/// Splits one command line into words like a POSIX shell, without any expansion.
private enum CommandWords {
    static func isBlank(_ c: Unicode.Scalar) -> Bool {
        c == " " || c == "\t" || c == "\n"
    }

    /// The words of `line`: blanks separate words; `'…'` is literal; in `"…"` a backslash escapes
    /// only `\`, `"`, `$`, backquote and newline; elsewhere it escapes any character; a
    /// backslash-newline joins lines; a final lone backslash stays (as dash and bash keep it).
    static func split(_ line: String) throws(MapTemplateError) -> [String] {
        var words: [String] = []
        var word = String.UnicodeScalarView()
        var inWord = false  // `''` is an empty word
        var rest = line.unicodeScalars.makeIterator()
        while let c = rest.next() {
            switch c {
            case _ where isBlank(c):
                if inWord { words.append(String(word)) }
                word = String.UnicodeScalarView()
                inWord = false
            case "'":
                inWord = true
                while true {
                    guard let q = rest.next() else { throw MapTemplateError(message: "unterminated ' in the command template") }
                    if q == "'" { break }
                    word.append(q)
                }
            case "\"":
                inWord = true
                while true {
                    guard let q = rest.next() else { throw MapTemplateError(message: "unterminated \" in the command template") }
                    if q == "\"" { break }
                    guard q == "\\", let escaped = rest.next() else {
                        word.append(q)
                        continue
                    }
                    switch escaped {
                    case "\\", "\"", "$", "`": word.append(escaped)
                    case "\n": break
                    default: word.append(contentsOf: ["\\", escaped])
                    }
                }
            case "\\":
                guard let escaped = rest.next() else {
                    word.append(c)
                    inWord = true
                    break
                }
                if escaped != "\n" {
                    word.append(escaped)
                    inWord = true
                }
            default:
                word.append(c)
                inWord = true
            }
        }
        if inWord { words.append(String(word)) }
        return words
    }
}

/// Input sources of a map: `::: a b c`, `:::: file` (one value per line), or stdin lines.
public enum MapInputs {
    /// All combinations of the sources, first source varying slowest (GNU parallel's order for
    /// several `:::`). No sources give one empty combination.
    public static func product(_ sources: [[String]]) -> [[String]] {
        sources.reduce([[]]) { combinations, source in
            combinations.flatMap { combination in source.map { combination + [$0] } }
        }
    }

    /// Lines of a file or stdin: split on "\n", a trailing "\r" removed per line, a final empty
    /// line (after the last "\n") dropped; empty lines in the middle kept, as parallel keeps them.
    /// (parallel itself keeps the "\r".)
    public static func lines(_ text: String) -> [String] {
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines.map { String($0.last == "\r" ? $0.dropLast() : $0) }
    }
}

/// Splits the words after `drover map [options]` into the template words and the input sources.
public enum MapArguments {
    /// One input source: `::: a b` or one path of `:::: path…` (several paths are several sources, as in parallel).
    public enum Source: Sendable, Equatable {
        /// The values after one `:::`.
        case values([String])
        /// A file after `::::`, read one value per line.
        case file(String)
    }

    /// Splits at the first `:::` or `::::`, e.g. `["echo", "{}", ":::", "a", "b", ":::", "1", "2"]` gives
    /// `(["echo", "{}"], [.values(["a", "b"]), .values(["1", "2"])])`. No `:::`/`::::` gives no
    /// sources (the caller reads stdin). Throws when the template is empty, when a `:::` or `::::`
    /// has no value, or on parallel's linked `:::+`/`::::+` (see `splitLinking`).
    public static func split(_ words: [String]) throws(MapTemplateError) -> (template: [String], sources: [Source]) {
        let s = try splitLinking(words)
        if s.linked.contains(true) { throw MapTemplateError(message: ":::+ and ::::+ (linked input sources) are not supported here") }
        return (s.template, s.sources)
    }

    /// As `split`, also accepting `:::+`/`::::+`: `linked[i]` tells that source `i` is linked to
    /// the one before it (its values paired with theirs, as by `--link`) instead of combined.
    public static func splitLinking(_ words: [String]) throws(MapTemplateError) -> (template: [String], sources: [Source], linked: [Bool]) {
        let markers: Set = [":::", "::::", ":::+", "::::+"]
        var start = words.firstIndex(where: markers.contains) ?? words.endIndex
        let template = Array(words[..<start])
        guard !template.isEmpty else { throw MapTemplateError(message: "no command before \(words.first ?? ":::")") }
        var sources: [Source] = []
        var linked: [Bool] = []
        while start < words.endIndex {
            let marker = words[start]
            let end = words[(start + 1)...].firstIndex(where: markers.contains) ?? words.endIndex
            let arguments = words[(start + 1)..<end]
            guard !arguments.isEmpty else {
                throw MapTemplateError(message: "\(marker) needs at least one \(marker.hasPrefix("::::") ? "file" : "value")")
            }
            let link = marker.hasSuffix("+")
            if link && sources.isEmpty { throw MapTemplateError(message: "\(marker) links to the source before it, and there is none") }
            if marker.hasPrefix("::::") {
                sources += arguments.map(Source.file)
                linked += arguments.indices.map { $0 == arguments.startIndex ? link : false }
            } else {
                // parallel reads `:::` values as lines: a value holding a newline is several inputs.
                sources.append(.values(arguments.flatMap {
                    $0.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                }))
                linked.append(link)
            }
            start = end
        }
        return (template, sources, linked)
    }
}
