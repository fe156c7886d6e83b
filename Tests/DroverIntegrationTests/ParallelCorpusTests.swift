import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    /// `drover map` side by side with GNU parallel: the corpus in Tests/Fixtures/parallel-corpus.txt
    /// (the same stdout and exit status for each line), injection through input values, and the
    /// output of a job re-run after a host loss printed once.
    @Suite("drover map as GNU parallel")
    struct ParallelCorpusTests {
        /// The corpus's folder: the input files its lines read.
        static func corpusFolder() throws -> String {
            let dir = try Testbed.tempDirectory()
            let files = ["abc-file": "A\nB\nC\n", "def-file": "D\nE\nF\n", "abc0-file": "A\0B\0C\0",
                         "tsv-file.tsv": "f1\tf2\nA\tB\nC\tD\n", "num30": (1...30).map { "\($0)\n" }.joined()]
            for (name, text) in files { try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8) }
            return dir
        }

        /// Runs one corpus line with `program` in place of PARALLEL, in `dir`.
        static func run(_ line: String, program: String, in dir: String) throws -> (status: Int32, stdout: String, stderr: String) {
            try Testbed.run("/bin/sh", ["-c", "cd \(ShellQuote.quote(dir)) && " + line.replacing("PARALLEL", with: program)])
        }

        @Test func theCorpusGivesParallelsOutputAndExitStatus() async throws {
            let text = try String(contentsOfFile: Testbed.repoRoot + "/Tests/Fixtures/parallel-corpus.txt", encoding: .utf8)
            let lines = text.split(separator: "\n").map(String.init).filter { !$0.isEmpty && !$0.hasPrefix("#") }
            #expect(lines.count >= 40, "the corpus has at least 40 invocations")
            let dir = try Self.corpusFolder()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            // The breaker runs as it does for users: the corpus's failing lines (the `exit {}`
            // line's failures, then `seq 105 | PARALLEL false` on every host) quarantine no host.
            try await CoordinatorFixture.with { f in
                let drover = [Testbed.droverBinary, "map", "--state", f.state, "--inventory", f.inventory].map(ShellQuote.quote).joined(separator: " ")
                for var line in lines {
                    var mode = "sorted"
                    for prefix in ["exact:", "status:"] where line.hasPrefix(prefix) {
                        mode = String(prefix.dropLast())
                        line = line.dropFirst(prefix.count).trimmingCharacters(in: .whitespaces)
                    }
                    let words = line.split(separator: " ")
                    if words.contains("-k") || words.contains("--keep-order") { mode = mode == "status" ? mode : "exact" }
                    let theirs = try Self.run(line, program: "parallel --will-cite", in: dir)
                    let ours = try Self.run(line, program: drover, in: dir)
                    #expect(ours.status == theirs.status, "\(line): exit status \(ours.status), parallel's \(theirs.status)\n\(ours.stderr)")
                    switch mode {
                    case "exact":
                        #expect(ours.stdout == theirs.stdout, "\(line): stdout\n\(ours.stdout)\nparallel's\n\(theirs.stdout)\n\(ours.stderr)")
                    case "sorted":
                        let sorted = { (s: String) in s.split(separator: "\n", omittingEmptySubsequences: false).sorted() }
                        #expect(sorted(ours.stdout) == sorted(theirs.stdout), "\(line): stdout\n\(ours.stdout)\nparallel's\n\(theirs.stdout)\n\(ours.stderr)")
                    default: break
                    }
                }
                let quarantines = try f.journal().quarantines().filter(\.isQuarantined)
                #expect(quarantines.isEmpty, "no host is a black hole here: \(quarantines.map { "\($0.host): \($0.reason ?? "")" })")
            }
        }

        @Test func inputValuesInjectNothingIntoTheShellLine() async throws {
            let tag = String(UUID().uuidString.prefix(8)).lowercased()
            let marker = { (i: Int) in "/tmp/pwned-map-\(tag)-\(i)" }
            let payloads = ["$(touch \(marker(1)))", "`touch \(marker(2))`", "; touch \(marker(3))", "| touch \(marker(4))",
                            "&& touch \(marker(5))", "' ; touch \(marker(6)) ; '", "\" ; touch \(marker(7)) ; \"",
                            "${IFS}touch${IFS}\(marker(8))", "> \(marker(9))", "x\ntouch \(marker(10))", "*", "-n", "$HOME", "\\"]
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let listFile = dir + "/values"
            try payloads.joined(separator: "\n").write(toFile: listFile, atomically: true, encoding: .utf8)
            let expected = payloads.flatMap { $0.split(separator: "\n").map { "[\($0)]" } }.joined(separator: "\n") + "\n"
            try await CoordinatorFixture.with { f in
                for (how, template) in [("a shell line", ["printf '[%s]\\n' {}"]), ("-q", ["-q", "printf", "[%s]\\n", "{}"]),
                                        ("{1} in a sentence", ["echo [{1}] | cat"])] {
                    let r = try f.drover(["map", "-k"] + template + ["::::", listFile])
                    #expect(r.status == 0, "\(how): \(r.stderr)")
                    if how == "{1} in a sentence" {
                        #expect(r.stdout.split(separator: "\n").count == expected.split(separator: "\n").count, "\(how): \(r.stdout)")
                    } else {
                        #expect(r.stdout == expected, "\(how): each value arrives as one word, byte for byte:\n\(r.stdout)")
                    }
                }
                var found: [String] = []
                for h in ["h1", "h2", "h3"] {
                    let listing = try ShellInjectionTests.testbed(["exec", h, "ls", "-A", "/tmp"])
                    found += listing.split(separator: "\n").filter { $0.hasPrefix("pwned-map-\(tag)") }.map { "\(h):/tmp/\($0)" }
                }
                found += ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix("pwned-map-\(tag)") }
                #expect(found.isEmpty, "no value ran as shell code: \(found)")
            }
        }

        @Test func jobsPerHostAndHostsByNameAsParallelsJAndS() async throws {
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try await CoordinatorFixture.with { f in
                // -S h1 -j1: one job at a time, all on h1 (the joblog tells where and when).
                let log = dir + "/j1.log"
                let r = try f.drover(["map", "-S", "h1", "-j1", "--joblog", log, "sleep 0.5; echo {}", ":::", "a", "b", "c"])
                #expect(r.status == 0, "\(r.stderr)")
                #expect(r.stdout.split(separator: "\n").sorted() == ["a", "b", "c"])
                let rows = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").dropFirst().map { $0.split(separator: "\t") }
                #expect(rows.count == 3 && rows.allSatisfy { $0[1] == "h1" }, "\(rows)")
                let spans = rows.compactMap { r in Double(r[2]).flatMap { s in Double(r[3]).map { (s, s + $0) } } }.sorted { $0.0 < $1.0 }
                #expect(spans.count == 3 && zip(spans, spans.dropFirst()).allSatisfy { $0.1 <= $1.0 + 0.05 }, "-j1: no two jobs at once on h1: \(spans)")
                // -S h1,3/h3: a subset of the hosts; every job runs on h1 or h3, none on h2 (the
                // one the scheduler would fill first once h1 and h3 are busy).
                let subsetLog = dir + "/subset.log"
                let subset = try f.drover(["map", "-S", "h1,3/h3", "--joblog", subsetLog, "sleep 0.2; echo {}"] + [":::"] + (1...12).map(String.init))
                #expect(subset.status == 0, "\(subset.stderr)")
                #expect(subset.stdout.split(separator: "\n").count == 12, "\(subset.stdout)")
                let used = Set(try String(contentsOfFile: subsetLog, encoding: .utf8).split(separator: "\n").dropFirst().map { String($0.split(separator: "\t")[1]) })
                #expect(!used.isEmpty && used.isSubset(of: ["h1", "h3"]), "-S h1,3/h3 ran on \(used)")
                // --results DIR --results-layout parallel: the same files as parallel's --results DIR.
                let ours = dir + "/res-drover", theirs = dir + "/res-parallel"
                let args = ["echo {1}; echo e{2} >&2", ":::", "a", "b/c", ":::", "x"]
                let res = try f.drover(["map", "--results", ours, "--results-layout", "parallel"] + args)
                #expect(res.status == 0, "\(res.stderr)")
                _ = try Testbed.run("/bin/sh", ["-c", (["parallel", "--will-cite", "--results", theirs] + args).map(ShellQuote.quote).joined(separator: " ") + " >/dev/null 2>&1"])
                func tree(_ root: String) -> [String: String] {
                    let files = (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).filter { !$0.hasSuffix("/") }
                    return Dictionary(uniqueKeysWithValues: files.compactMap { p in (try? String(contentsOfFile: root + "/" + p, encoding: .utf8)).map { (p, $0) } })
                }
                #expect(!tree(theirs).isEmpty && tree(ours) == tree(theirs), "drover's \(tree(ours))\nparallel's \(tree(theirs))")
                // `:` is the inventory's host on this machine; the testbed's has none.
                let local = try f.drover(["map", "-S", ":", "echo", ":::", "a"])
                #expect(local.status == 255 && local.stderr.contains("-S :") && local.stdout.isEmpty, "\(local.stderr)")
                let unknown = try f.drover(["map", "-S", "nosuch", "echo", ":::", "a"])
                #expect(unknown.status == 255 && unknown.stderr.contains("no host nosuch"), "\(unknown.stderr)")
                let refused = try f.drover(["map", "--pipe", "wc", "-l"])
                #expect(refused.status == 255 && refused.stderr.contains("--pipe") && refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
                let help = try f.drover(["map", "--help"])
                #expect(help.status == 0 && help.stdout.contains("--keep-order") && help.stdout.contains("Exit status"), "\(help.stderr)")
            }
        }

        /// `--timeout 300%`: once jobs succeeded in about 1 s, the 30 s one is killed after about
        /// 3 s (as parallel does), counted as failed, and `drover status` says it timed out.
        @Test func aPercentTimeoutKillsTheJobThatRunsFarLongerThanTheMedian() async throws {
            try await CoordinatorFixture.with { f in
                let r = try f.drover(["map", "--name", "pct", "--timeout", "300%", "sleep {}; echo {}", ":::", "1", "1", "1", "30"])
                #expect(r.status == 1, "one job failed: exit 1, as parallel's\n\(r.stderr)")
                #expect(r.stdout.split(separator: "\n").sorted() == ["1", "1", "1"], "\(r.stdout)")
                #expect(r.stderr.contains("job 4 (30) was killed because it timed out"), "\(r.stderr)")
                let outlier = try #require(try f.journal().batchJobs("pct").first { $0.batchJob == "4" })
                let ran = try f.journal().attempts(of: outlier.id).compactMap { a in a.endedAt.flatMap { e in a.startedAt.map { e - $0 } } }
                #expect(ran.count == 1 && ran[0] >= 2.9 && ran[0] < 15, "killed about 3 s after its start, not waited for: \(ran)")
                #expect(outlier.state == .cancelled && outlier.reason?.hasPrefix("timed out: ran longer than 300% of the median runtime") == true,
                        "\(outlier.state) \(outlier.reason ?? "")")
                let status = try f.droverState(["status", outlier.label])
                #expect(status.stdout.contains("timed out: ran longer than 300%"), "drover status shows why: \(status.stdout)\(status.stderr)")
                // Refused where it cannot work: with --detach nothing follows the jobs.
                let detached = try f.drover(["map", "--detach", "--timeout", "200%", "echo", ":::", "a"])
                #expect(detached.status == 255 && detached.stderr.contains("--detach"), "\(detached.stderr)")
                let bad = try f.drover(["map", "--timeout", "x%", "echo", ":::", "a"])
                #expect(bad.status == 255 && bad.stderr.contains("--timeout x%"), "\(bad.stderr)")
            }
        }

        @Test func aMapWaitingOnQuarantinedHostsSaysSo() async throws {
            try await CoordinatorFixture.with { f in
                func hosts(_ verb: String, _ h: String) throws {
                    let r = try Testbed.run(Testbed.droverBinary, ["hosts", verb, h, "--state", f.state, "--inventory", f.inventory])
                    #expect(r.status == 0, "drover hosts \(verb) \(h): \(r.stderr)")
                }
                for h in ["h1", "h2", "h3"] { try hosts("quarantine", h) }
                let errors = f.state + "/../held.stderr"
                let line = [Testbed.droverBinary, "map", "--state", f.state, "--inventory", f.inventory, "--name", "held", "echo", ":::", "a"].map(ShellQuote.quote).joined(separator: " ")
                let map = Task.detached { try Testbed.run("/bin/sh", ["-c", line + " 2>" + ShellQuote.quote(errors)]) }
                // The map waits and says why; once the hosts are released it ends.
                try f.waitFor("the map's note", timeout: 30) {
                    ((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "").contains("every host is quarantined")
                }
                for h in ["h1", "h2", "h3"] { try hosts("release", h) }
                let r = try await map.value
                let stderr = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
                #expect(r.status == 0 && r.stdout == "a\n", "\(stderr)")
                #expect(stderr.contains("drover hosts release"), "\(stderr)")
            }
        }

        @Test func aJobRerunAfterAHostLossPrintsItsOutputOnce() async throws {
            try await CoordinatorFixture.with(deadAfter: 4) { f in
                let args = [Testbed.droverBinary, "map", "--state", f.state, "--inventory", f.inventory, "--name", "lossmap", "-k",
                            "sleep 4; echo out-{}; echo err-{} >&2", ":::"] + (1...6).map(String.init)
                let map = Task.detached { try Testbed.run(args[0], Array(args.dropFirst())) }
                let j = try f.journal()
                try f.waitFor("the map's jobs", timeout: 30) { try j.batchJobs("lossmap").count == 6 }
                let ids = try j.batchJobs("lossmap").map(\.id)
                _ = try f.runningJob(on: "h3", among: ids)
                let r = try await Testbed.withHostKilled("h3") { try await map.value }
                #expect(r.status == 0, "\(r.stderr)")
                #expect(r.stdout == (1...6).map { "out-\($0)\n" }.joined(), "each job's stdout once, in order:\n\(r.stdout)")
                for n in 1...6 {
                    #expect(r.stderr.components(separatedBy: "err-\(n)\n").count == 2, "err-\(n) once on stderr:\n\(r.stderr)")
                }
                let done = try j.batchJobs("lossmap")
                #expect(done.contains { $0.losses > 0 }, "a job was lost with h3 and ran again: \(done.map(\.reason))")
            }
        }
        @Test func aLineBufferedMapPrintsEachLineAsItComesAndOnceAfterAHostLoss() async throws {
            try await CoordinatorFixture.with(deadAfter: 4) { f in
                let out = f.state + "/../lb.stdout", errors = f.state + "/../lb.stderr"
                let line = [Testbed.droverBinary, "map", "--state", f.state, "--inventory", f.inventory, "--name", "lbmap", "--line-buffer", "--tag",
                            "echo a-{}; sleep 6; echo b-{}", ":::"].map(ShellQuote.quote).joined(separator: " ") + " " + (1...6).map(String.init).joined(separator: " ")
                let map = Task.detached { try Testbed.run("/bin/sh", ["-c", line + " >" + ShellQuote.quote(out) + " 2>" + ShellQuote.quote(errors)]) }
                let j = try f.journal()
                try f.waitFor("the map's jobs", timeout: 30) { try j.batchJobs("lbmap").count == 6 }
                let ids = try j.batchJobs("lbmap").map(\.id)
                let onH3 = try f.runningJob(on: "h3", among: ids)
                let n = try #require(try j.job(onH3)?.batchJob)
                // The first line comes while the job still runs (it sleeps 6 s before its second).
                try f.waitFor("job \(n)'s first line, live", timeout: 20) {
                    ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("\(n)\ta-\(n)\n")
                }
                #expect(try j.job(onH3)?.state.isFinal == false, "a line printed before its job ended")
                #expect(!(((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("b-")), "no second line yet")
                // h3 dies: its job runs again elsewhere; the line printed already is not printed again.
                let r = try await Testbed.withHostKilled("h3") { try await map.value }
                let stdout = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
                let stderr = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
                #expect(r.status == 0, "\(stderr)")
                let expected = (1...6).flatMap { ["\($0)\ta-\($0)", "\($0)\tb-\($0)"] }.sorted()
                #expect(stdout.split(separator: "\n").map(String.init).sorted() == expected, "each line once, tagged:\n\(stdout)\n\(stderr)")
                #expect(stderr.contains("are not printed again"), "the note on stderr: \(stderr)")
                #expect(try j.batchJobs("lbmap").contains { $0.losses > 0 }, "a job was lost with h3 and ran again")
            }
        }
    }
}
