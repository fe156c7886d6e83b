import DroverCore
import Testing
@testable import DroverCommands

/// `drover map`'s reading of GNU parallel's options and inputs (no hosts needed).
@Suite("drover map options")
struct MapOptionsTests {
    @Test func optionsAreReadAsParallelReadsThem() throws {
        let (o, rest) = try MapOptions.parse(["-k", "-j4", "--tag", "--halt=now,fail=1", "-N", "2", "--colsep", ",", "-S", "2/h1", "--joblog", "log", "echo", "-k", ":::", "a"])
        #expect(o.keepOrder && o.tag && o.jobs == "4" && o.maxArgs == 2 && o.colsep == "," && o.sshLogins == ["2/h1"] && o.joblog == "log")
        #expect(o.halt == MapHalt(when: .now, why: .fail, count: 1))
        #expect(rest == ["echo", "-k", ":::", "a"], "options end at the command")
        #expect(try MapOptions.parse(["--", "-x", ":::", "a"]).rest == ["-x", ":::", "a"])
        #expect(try MapOptions.parse(["--progress", "none", "echo"]).0.progress == ProgressChoice.none)
        #expect(try MapOptions.parse(["--progress", "echo"]).0.progress == .bar, "parallel's --progress is a flag")
        #expect(try MapOptions.parse(["--help"]).0.help)
    }

    @Test(arguments: ["--pipe", "-X", "--ungroup", "--bogus", "--nonall"])
    func unsupportedOptionsAreRefusedByName(option: String) {
        #expect {
            try MapOptions.parse([option, "echo", ":::", "a"])
        } throws: { ($0 as? MapTemplateError)?.message.contains(option) == true }
    }

    @Test func haltTakesEveryFormOfParallel() {
        #expect(MapHalt("never") == .never && MapHalt("0") == .never)
        #expect(MapHalt("2") == MapHalt(when: .now) && MapHalt("1") == MapHalt(when: .soon))
        #expect(MapHalt("soon,success=30%") == MapHalt(when: .soon, why: .success, count: 30, percent: true))
        #expect(MapHalt("10%") == MapHalt(when: .soon, count: 10, percent: true))
        #expect(MapHalt("later,fail=1") == nil && MapHalt("now,fail=0") == nil && MapHalt("now,oops=1") == nil)
        #expect(MapHalt(when: .now, count: 3).reached(failed: 3, succeeded: 0, total: 10))
        #expect(!MapHalt(when: .now, count: 3).reached(failed: 2, succeeded: 5, total: 10))
        #expect(MapHalt(when: .soon, count: 50, percent: true).reached(failed: 5, succeeded: 0, total: 10))
    }

    func inputs(_ words: [String], _ options: [String] = [], stdin: String = "") throws -> [[String]] {
        let (o, rest) = try MapOptions.parse(options + ["echo"] + words)
        let split = try MapArguments.splitLinking(rest)
        return try MapInputList.read(split.sources, linked: split.linked, options: o) { Array(stdin.utf8) }.jobs
    }

    @Test func inputsCombineLinkSplitAndGroupAsInParallel() throws {
        #expect(try inputs([":::", "a", "b", ":::", "1", "2"]) == [["a", "1"], ["a", "2"], ["b", "1"], ["b", "2"]])
        #expect(try inputs([":::", "a", "b", "c", ":::", "1", "2"], ["--link"]) == [["a", "1"], ["b", "2"], ["c", "1"]], "the shorter source wraps")
        #expect(try inputs([":::", "a", "b", ":::+", "1", "2", ":::", "x"]) == [["a", "1", "x"], ["b", "2", "x"]])
        #expect(try inputs([":::", "a,b", "c,d"], ["--colsep", ","]) == [["a", "b"], ["c", "d"]])
        #expect(try inputs([":::", "a", "b", "c"], ["-N", "2"]) == [["a", "b"], ["c"]])
        #expect(try inputs([":::", "a", "b", "c"], ["-N0"]) == [[], [], []], "-N0: one job per input, which it does not see")
        let none = try MapTemplate(["echo", "foo", "{}", "{#}"], shell: true, noArguments: true)
        #expect(none.expand([], seq: 2) == ["echo foo  2"], "-N0: {} inserts nothing, not ''")
        #expect(try MapTemplate(["echo", "foo"], shell: true, noArguments: true).expand([], seq: 1) == ["echo foo"], "-N0 appends no {}")
        #expect(try inputs([], stdin: "x\ny\n") == [["x"], ["y"]])
        #expect(try inputs([], ["-0"], stdin: "x y\0z\0") == [["x y"], ["z"]])
        let (o, _) = try MapOptions.parse(["--header", ":", "echo"])
        let list = try MapInputList.read([.values(["name", "a"]), .values(["n", "1"])], linked: [false, false], options: o) { [] }
        #expect(list.jobs == [["a", "1"]] && list.headers == ["name", "n"])
        #expect(list.renaming(["{name}-{n.}"]) == ["{1}-{2.}"])
    }

    @Test func wordsExpandForTagsAndTransfers() {
        #expect(MapBuilder.expandWord("{}-bar", ["A"], seq: 1) == "A-bar")
        #expect(MapBuilder.expandWord("{2}-x", ["a", "1"], seq: 3) == "1-x")
        #expect(MapBuilder.expandWord("plain", ["a"], seq: 1) == "plain")
        #expect(MapBuilder.expandWord("{#}.out", ["a"], seq: 7) == "7.out")
    }
}
