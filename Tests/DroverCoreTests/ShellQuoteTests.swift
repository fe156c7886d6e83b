import Foundation
import Testing
@testable import DroverCore

@Suite("Shell quoting")
struct ShellQuoteTests {
    static let nasty = [
        "plain", "with space", "it's", "\"double\"", "$(touch /tmp/drover-pwned)", "`id`", "a;b|c&d",
        "new\nline", "tab\there", "*", "~", "-n", "", "ünïcødé ✓", "back\\slash", "'", "''", "$HOME", "!x",
    ]

    @Test func argvSurvivesPOSIXShellByteForByte() throws {
        let line = "printf '%s\\0' " + ShellQuote.join(Self.nasty)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", line]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let parts = data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
        #expect(parts == Self.nasty)
        #expect(!FileManager.default.fileExists(atPath: "/tmp/drover-pwned"))
    }

    @Test func safeWordsStayReadable() {
        #expect(ShellQuote.quote("abc-1.2/x") == "abc-1.2/x")
        #expect(ShellQuote.quote("a b") == "'a b'")
        #expect(ShellQuote.quote("it's") == "'it'\\''s'")
    }
}

/// The agent reads the user from /etc/passwd itself (it is static: no NSS).
@Suite("passwd file")
struct PasswdFileTests {
    @Test func entriesAreParsedAndCommentsAndBrokenLinesSkipped() {
        let text = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken:line\nada:x:1000:1000:Ada,,,:/home/ada:/bin/zsh\n+nis::::::\n"
        let entries = PasswdFile.parse(text)
        #expect(entries.map(\.name) == ["root", "ada"])
        #expect(entries.last == PasswdFile.Entry(name: "ada", uid: 1000, home: "/home/ada"))
    }

    @Test func theCurrentUserIsFound() {
        let me = PasswdFile.entry(uid: getuid())
        #expect(me != nil)
        #expect(LocalUser.name == me?.name)
    }
}
