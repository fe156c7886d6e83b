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
