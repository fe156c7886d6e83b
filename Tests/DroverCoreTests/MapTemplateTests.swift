import Foundation
import Testing
@testable import DroverCore

/// `drover map` expansion, checked against GNU parallel itself: the same words go to
/// `parallel -q` (argv mode) or plain `parallel` (shell mode) and through MapTemplate, and both
/// must print the same lines.
@Suite("drover map templates")
struct MapTemplateTests {
    static let printf = "/usr/bin/printf"
    static let allParts = ["{}", "{.}", "{/}", "{//}", "{/.}", "{#}"]
    static let tricky = [
        "a.b/c", "/abs/path.tar.gz", "noslash", "trail/", "trail.x/", ".bashrc", "dir/.bashrc", "",
        "a b.c", "x.y.z", "/", "//", "a//b.c", "./a", "../a.b", "a.", ".", "..", "/x", "a/b/", "a///",
        "a/.b.c", "ü.ñ/é.ß", "e\u{301}.x/ab.\u{301}", "it's", "\"dq\"", "$HOME", "*", "`id`", "$(echo hi)",
        "a;b|c", "tab\there", "-n", "~", "cr\r", "{}", "{.}", "back\\slash.x",
    ]

    // MARK: compared with GNU parallel

    @Test func argvModeMatchesParallelQ() throws {
        try expectSameAsParallel([Self.printf, "[%s]\\n"] + Self.allParts + [":::"] + Self.tricky, shell: false)
    }

    @Test func shellModeMatchesParallel() throws {
        try expectSameAsParallel([Self.printf, "'[%s]\\n'"] + Self.allParts + [":::"] + Self.tricky, shell: true)
    }

    @Test(arguments: [false, true])
    func twoSourcesGiveParallelsOrderAndPositions(shell: Bool) throws {
        // {-3} of two sources is the last (Perl's negative index wraps), {3} and {00} name none,
        // {0} is {}, and blanks may stand between the number and the part.
        let parts = ["{}", "x{}y", "{.}", "{1}", "{2}", "{1.}", "{2/}", "{1//}", "{2/.}",
                     "{-1}", "{-3}", "{3}", "{0}", "{00}", "{1 .}", "{#}"]
        try expectSameAsParallel(
            [Self.printf, shell ? "'[%s]\\n'" : "[%s]\\n"] + parts + [":::", "a b.c", "d/e.f", ":::", "1.x", "", "$HOME"],
            shell: shell)
    }

    @Test(arguments: [false, true])
    func fileSourcesAreReadAsLines(shell: Bool) throws {
        let one = try temporaryFile("x.y\n\nsp ace/f.g\n'q'\nlast")
        let two = try temporaryFile("1\n2\n\n")
        defer { unlink(one); unlink(two) }
        try expectSameAsParallel([Self.printf, shell ? "'[%s]\\n'" : "[%s]\\n", "{1}", "{2.}", "{#}", "::::", one, two], shell: shell)
    }

    @Test func stdinIsReadAsLines() throws {
        try expectSameAsParallel([Self.printf, "[%s]\\n", "{/}", "{#}"], shell: false, stdin: "a/b\n\nc d/e\n")
    }

    @Test func newlineInAValueMakesSeveralInputs() throws {
        try expectSameAsParallel([Self.printf, "[%s]\\n", "{}", "{#}", ":::", "a\nb", "c\n", ""], shell: false)
    }

    @Test func otherBracesStayText() throws {
        let braces = ["{foo}", "{", "}", "{{}}", "{}}", "{{/}}", "{ 1}", "{1/ }", "{1.x}"]
        try expectSameAsParallel([Self.printf, "[%s]\\n"] + braces + [":::", "a/b.c"], shell: false)
    }

    @Test(arguments: [
        ["{}", ":::", "/usr/bin/printf '[%s]\\n' a 'b c'"],
        ["V={}", "/bin/sh", "-c", "'printf \"[%s]\\n\" \"$V\"'", ":::", "a b", "it's"],
        ["/usr/bin/printf", "'[%s]\\n'", "V={}", ":::", "a b"],
        ["x{#}=1", "/usr/bin/printf", "'[%s]\\n'", "{}", ":::", "a b", "c  d"],
    ])
    func shellLineStartingWithAReplacementTakesValuesUnquoted(words: [String]) throws {
        try expectSameAsParallel(words, shell: true)
    }

    @Test(arguments: [false, true])
    func slotIsOneWithOneJob(shell: Bool) throws {
        let template = try MapTemplate(["echo", "{%}", "s{%}x"], shell: shell)
        #expect(template.usesSlot)
        try expectSameAsParallel([Self.printf, shell ? "'[%s]\\n'" : "[%s]\\n", "{%}", "s{%}x", "{}", ":::", "a", "b c"], shell: shell)
    }

    // MARK: building templates

    @Test func singleWordIsSplitLikeAShellWithoutExpansion() throws {
        let lines = [
            "\(Self.printf) '[%s]\\n' a\\ b \"c d\" 'e f' {}",
            "\(Self.printf) \"[%s]\\n\" \"g\\\"h\" \"i\\\\j\" \"k\\$l\" \"m\\n\" \"\\`\" {}",
            "\(Self.printf) '[%s]\\n' '' \"\" x''y a\"b\"'c' {}",
            "\(Self.printf)\t'[%s]\\n'  a\\\nb \t {} \"x\\\ny\"",
            "\(Self.printf) '[%s]\\n' 'it'\\''s' \\\\ \\' \\\" {}",
            "\(Self.printf) '[%s]\\n' \"ü ✓\" é\\ x {} a\\",
        ]
        for line in lines {
            let template = try MapTemplate([line], shell: false)
            let ours = try ChildProcess.run(template.words, timeout: 30)
            let shell = try ChildProcess.run(["/bin/sh", "-c", line], timeout: 30)
            #expect(ours.stdoutText == shell.stdoutText, "\(line.debugDescription) split as \(template.words)")
        }
        // A newline would end a shell command; in one template word it separates words like a blank.
        #expect(try MapTemplate(["echo a\nb"], shell: false).words == ["echo", "a", "b", "{}"])
    }

    @Test func unterminatedQuoteIsAnError() {
        for line in ["echo 'abc {}", "echo \"abc {}", "echo \"a\\\" {}"] {
            #expect(throws: MapTemplateError.self, "\(line)") { try MapTemplate([line], shell: false) }
        }
        #expect((try? MapTemplate(["echo 'abc"], shell: true)) != nil, "a shell line is left to the shell")
    }

    @Test func templateWithoutReplacementStringGetsBracesAppended() throws {
        #expect(try MapTemplate(["echo"], shell: false).words == ["echo", "{}"])
        #expect(try MapTemplate(["echo", "{foo}"], shell: false).words == ["echo", "{foo}", "{}"])
        #expect(try MapTemplate(["echo hi"], shell: false).words == ["echo", "hi", "{}"])
        #expect(try MapTemplate(["echo", "hi"], shell: true).words == ["echo hi {}"])
        #expect(try MapTemplate(["echo", "{#}"], shell: false).words == ["echo", "{#}"])
        #expect(try MapTemplate(["echo", "{2/}"], shell: true).words == ["echo {2/}"])
    }

    @Test func argvValuesGoInByteForByte() throws {
        let template = try MapTemplate(["cmd", "--in={}", "{.}.out", "{#}"], shell: false)
        #expect(template.expand(["$HOME/it's *.txt"], seq: 7) == ["cmd", "--in=$HOME/it's *.txt", "$HOME/it's *.out", "7"])
        #expect(!template.usesSlot)
    }

    @Test func fillSlotReplacesEverySlot() {
        #expect(MapTemplate.fillSlot(["a{%}", "{%}{%}", "x"], slot: 3) == ["a3", "33", "x"])
    }

    // MARK: inputs and arguments

    @Test func productVariesTheFirstSourceSlowest() {
        #expect(MapInputs.product([["a", "b"], ["1", "2"]]) == [["a", "1"], ["a", "2"], ["b", "1"], ["b", "2"]])
        #expect(MapInputs.product([["a"], []]) == [])
        #expect(MapInputs.product([]) == [[]])
    }

    @Test func linesKeepMiddleEmptyLinesAndDropCarriageReturns() {
        #expect(MapInputs.lines("a\r\nb\n\nc") == ["a", "b", "", "c"])
        #expect(MapInputs.lines("a\n\n") == ["a", ""])
        #expect(MapInputs.lines("\n") == [""])
        #expect(MapInputs.lines("") == [])
    }

    @Test func splitSeparatesTemplateAndSources() throws {
        let split = try MapArguments.split(["echo", "{}", ":::", "a", "b", "::::", "f1", "f2", ":::", "1"])
        #expect(split.template == ["echo", "{}"])
        #expect(split.sources == [.values(["a", "b"]), .file("f1"), .file("f2"), .values(["1"])])
        #expect(try MapArguments.split(["echo", "{}"]).sources == [])
        #expect(try MapArguments.split(["echo", ":::", "a\nb", ""]).sources == [.values(["a", "b", ""])])
    }

    @Test(arguments: [[], [":::", "a"], ["echo", ":::"], ["echo", ":::", "a", ":::"], ["echo", "::::"], ["echo", ":::+", "a"]])
    func splitRejects(words: [String]) {
        #expect(throws: MapTemplateError.self, "\(words)") { try MapArguments.split(words) }
    }

    // MARK: helpers

    /// Runs `words` (a template, then `:::`/`::::` sources as `drover map` takes them) through GNU
    /// parallel and through MapArguments, MapInputs and MapTemplate, and expects the same lines.
    private func expectSameAsParallel(_ words: [String], shell: Bool, stdin: String = "") throws {
        let theirs = try runParallel((shell ? [] : ["-q"]) + words, stdin: stdin)
        let (templateWords, sources) = try MapArguments.split(words)
        let template = try MapTemplate(templateWords, shell: shell)
        let inputs = try sources.isEmpty ? [MapInputs.lines(stdin)] : sources.map { source in
            switch source {
            case .values(let values): values
            case .file(let path): MapInputs.lines(String(decoding: try LocalFile.read(path), as: UTF8.self))
            }
        }
        var ours = ""
        for (i, values) in MapInputs.product(inputs).enumerated() {
            var argv = template.expand(values, seq: i + 1)
            if template.usesSlot { argv = MapTemplate.fillSlot(argv, slot: 1) }
            ours += try ChildProcess.run(shell ? ["/bin/sh", "-c", argv[0]] : argv, timeout: 30).stdoutText
        }
        let mine = ours.split(separator: "\n", omittingEmptySubsequences: false)
        let parallels = theirs.split(separator: "\n", omittingEmptySubsequences: false)
        func show(_ lines: [Substring], _ i: Int) -> String { i < lines.count ? String(reflecting: String(lines[i])) : "(end)" }
        if let i = (0..<max(mine.count, parallels.count)).first(where: { show(mine, $0) != show(parallels, $0) }) {
            Issue.record("\(words) (shell: \(shell)): output line \(i + 1) is \(show(mine, i)), parallel's is \(show(parallels, i))")
        }
    }

    /// GNU parallel's output for `arguments`, one job at a time, in input order.
    private func runParallel(_ arguments: [String], stdin: String) throws -> String {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .map { "\($0)/parallel" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        let parallel = try #require(path, "GNU parallel is not installed: run scripts/setup")
        let outcome = try ChildProcess.run([parallel, "--will-cite", "-j1", "-k"] + arguments, stdin: Array(stdin.utf8), timeout: 60)
        #expect(outcome.status == 0, "parallel \(arguments): \(outcome.stderrText)")
        return outcome.stdoutText
    }

    private func temporaryFile(_ content: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("drover-map-\(UUID().uuidString)").path
        try AtomicFile.write(Array(content.utf8), to: path, durable: false)
        return path
    }
}
