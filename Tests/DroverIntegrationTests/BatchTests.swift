import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    @Suite("Batches")
    struct BatchTests {
        @Test func dependenciesRunInOrderFailuresSkipTheirDependentsAndFilesTravelOncePerHost() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            try files.write("shared.dat", String(repeating: "x", count: 1 << 20))
            let jobs = (1...6).map { i in
                """
                {"id": "use-\(i)", "after": ["prep"], "shell": "cat prep/n.txt; wc -c < shared.dat > size.txt",
                 "inputs": ["shared.dat", {"from": "prep", "path": "n.txt"}], "outputs": ["size.txt"]}
                """
            }.joined(separator: ",\n")
            let file = try files.write("deps.json", """
                {"batch": "deps", "jobs": [
                  {"id": "prep", "shell": "echo 21 > n.txt", "outputs": ["n.txt"]},
                  \(jobs),
                  {"id": "bad", "after": ["prep"], "shell": "echo boom-line >&2; exit 4"},
                  {"id": "after-bad", "after": ["bad"], "argv": ["true"]},
                  {"id": "after-after-bad", "after": ["after-bad"], "argv": ["true"]},
                  {"id": "on-failure", "after": ["bad:failed"], "argv": ["echo", "cleanup"]},
                  {"id": "in-any-case", "after": ["bad:any", "use-1"], "argv": ["true"]}
                ]}
                """)
            try await CoordinatorFixture.with { f in
                let r = try f.runBatch(file, files)
                #expect(r.status == 1, "a failed job makes the batch exit 1: \(r.stderr)")
                let jobs = try f.batchJobs("deps")
                #expect(jobs.count == 12)
                for i in 1...6 {
                    let use = jobs["use-\(i)"]!
                    #expect(use.state == .succeeded, "\(use.reason ?? "")")
                    #expect(use.startedAt! >= jobs["prep"]!.endedAt!, "use-\(i) started before prep ended")
                    #expect(files.result("deps", "use-\(i)", "size.txt")?.trimmingCharacters(in: .whitespacesAndNewlines) == "1048576")
                    #expect(files.result("deps", "use-\(i)", "stdout") == "21\n")
                }
                #expect(jobs["bad"]?.state == .failed)
                #expect(files.result("deps", "bad", "stderr") == "boom-line\n")
                #expect(jobs["after-bad"]?.state == .skipped && jobs["after-bad"]?.reason?.contains("bad failed") == true, "\(jobs["after-bad"]?.reason ?? "")")
                #expect(jobs["after-after-bad"]?.state == .skipped)
                #expect(jobs["on-failure"]?.state == .succeeded)
                #expect(jobs["in-any-case"]?.state == .succeeded)
                #expect(r.stdout.contains("boom-line"), "the summary shows the first stderr lines of failures:\n\(r.stdout)")
                #expect(r.stdout.contains("batch deps: 9 succeeded, 1 failed, 0 cancelled, 2 skipped"), "\(r.stdout)")
                // shared.dat went to each host at most once although six jobs used it.
                let sha = String(try LocalFile.sha256(files.dir + "/shared.dat").prefix(12))
                let staged = try f.journal().events().filter { $0.kind == "staged" }
                for host in ["h1", "h2", "h3"] {
                    #expect(staged.filter { $0.host == host && $0.message.contains(sha) }.count <= 1, "\(staged.map(\.message))")
                }
                #expect(staged.filter { $0.message.contains(sha) }.count >= 1)
                try validateReport(files.results + "/deps/report.json")
                // Commands that take jobs take the batch too.
                let logs = try f.drover(["logs", "deps"])
                #expect(logs.stdout.contains("==> deps/use-1 (succeeded) <==\n21\n"), "\(logs.stdout)")
                #expect(try f.droverState(["wait", "deps"]).status == 1, "a failed job makes `wait BATCH` exit 1")
                #expect(try f.droverState(["status", "deps", "--json"]).stdout.components(separatedBy: "\"attempts\"").count == 13)
                let events = try f.droverState(["events", "--job", "deps/bad"]).stdout
                #expect(events.contains("deps/bad") && events.contains("failed") && !events.contains("deps/use-1"), "\(events)")
            }
        }

        @Test func aHostPoweredOffMidBatchHasItsJobsRunElsewhereAndTheBatchCompletes() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let jobs = (1...6).map { #"{"id": "slow-\#($0)", "shell": "sleep 5; hostname > where.txt", "outputs": ["where.txt"]}"# }
            let file = try files.write("loss.json", #"{"batch": "loss", "jobs": [\#(jobs.joined(separator: ","))]}"#)
            try await CoordinatorFixture.with(deadAfter: 4) { f in
                let s = try f.drover(["submit", file, "--results", files.results])
                #expect(s.status == 0, "\(s.stderr)")
                let ids = try f.journal().batchJobs("loss").map(\.id)
                _ = try f.runningJob(on: "h3", among: ids)
                try await Testbed.withHostKilled("h3") {
                    let done = try f.waitFinal(ids, timeout: 90)
                    #expect(done.allSatisfy { $0.state == .succeeded }, "\(done.map(\.reason))")
                    #expect(done.allSatisfy { $0.host != "h3" })
                    for j in done {
                        let at = files.result("loss", j.batchJob!, "where.txt")?.trimmingCharacters(in: .whitespacesAndNewlines)
                        #expect(at == j.host, "the fetched output comes from the attempt that counted")
                    }
                    let report = try f.droverState(["report", "loss", "--json"])
                    #expect(report.stdout.contains("\"lost_attempts\":") && !report.stdout.contains("\"lost_attempts\":0"), "\(report.stdout.prefix(600))")
                    try validateReport(files.results + "/loss/report.json")
                }
            }
        }

        @Test func retriesFollowTheConfiguredBackOff() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let file = try files.write("retry.json", """
                {"batch": "retry", "jobs": [
                  {"id": "flaky", "shell": "exit 5", "retry": {"max_attempts": 4, "initial": 1, "multiplier": 2, "jitter": 0, "on": [5]}},
                  {"id": "other-code", "shell": "exit 6", "retry": {"max_attempts": 4, "initial": 1, "jitter": 0, "on": [5]}}
                ]}
                """)
            try await CoordinatorFixture.with { f in
                _ = try f.runBatch(file, files)
                let jobs = try f.batchJobs("retry")
                let flaky = jobs["flaky"]!
                #expect(flaky.state == .failed && flaky.attempt == 4, "\(flaky.reason ?? "")")
                let attempts = try f.journal().attempts(of: flaky.id)
                let dispatched = try f.dispatchTimes(flaky.id)
                for (k, delay) in [1.0, 2.0, 4.0].enumerated() {
                    let gap = dispatched[k + 1] - attempts[k].endedAt!
                    #expect(gap >= delay - 0.05 && gap < delay + 1.0, "retry \(k + 1): \(gap) s after the failure, expected \(delay) s")
                }
                let other = jobs["other-code"]!
                #expect(other.state == .failed && other.attempt == 1 && other.reason?.contains("not retried") == true, "\(other.reason ?? "")")
            }
        }

        @Test func failFastCancelsTheRest() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let file = try files.write("ff.json", """
                {"batch": "ff", "jobs": [
                  {"id": "fails", "shell": "sleep 1; exit 1"},
                  {"id": "long-1", "argv": ["sleep", "60"]},
                  {"id": "long-2", "argv": ["sleep", "60"]},
                  {"id": "later", "after": ["long-1"], "argv": ["true"]}
                ]}
                """)
            try await CoordinatorFixture.with { f in
                let start = ContinuousClock.now
                let r = try f.runBatch(file, files, ["--fail-fast"])
                #expect(r.status == 1)
                #expect(Testbed.elapsed(since: start) < 40, "fail-fast did not stop the 60 s jobs")
                let jobs = try f.batchJobs("ff")
                #expect(jobs["fails"]?.state == .failed)
                for id in ["long-1", "long-2", "later"] {
                    #expect(jobs[id]?.state == .cancelled && jobs[id]?.reason?.contains("fail-fast") == true, "\(id): \(jobs[id]?.reason ?? "")")
                }
                for id in ["long-1", "long-2"] {
                    let last = try f.journal().attempts(of: try #require(jobs[id]).id).last
                    #expect(last?.agentState == "cancelled", "the agent stopped \(id)")
                }
            }
        }

        @Test func approvalGatesHoldTheirDependents() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let file = try files.write("gate.json", """
                {"batch": "gate", "jobs": [
                  {"id": "prep", "argv": ["true"]},
                  {"id": "go-ahead", "approval": true, "after": ["prep"], "timeout": 120},
                  {"id": "expensive", "after": ["go-ahead"], "argv": ["echo", "ran"]},
                  {"id": "never-approved", "approval": true, "timeout": 1},
                  {"id": "behind-it", "after": ["never-approved"], "argv": ["true"]}
                ]}
                """)
            try await CoordinatorFixture.with { f in
                let s = try f.drover(["submit", file, "--results", files.results])
                #expect(s.status == 0, "\(s.stderr)")
                try f.waitFor("go-ahead to await approval", timeout: 30) { try f.batchJobs("gate")["go-ahead"]?.state == .approval }
                #expect(try f.batchJobs("gate")["expensive"]?.state == .waiting)
                let wrong = try f.drover(["approve", "gate/expensive"])
                #expect(wrong.status != 0 && wrong.stderr.contains("not an approval gate"), "\(wrong.stderr)")
                let a = try f.drover(["approve", "gate/go-ahead"])
                #expect(a.status == 0, "\(a.stderr)")
                let ids = try f.journal().batchJobs("gate").map(\.id)
                let jobs = try f.waitFinal(ids, timeout: 60)
                let byID = Dictionary(jobs.map { ($0.batchJob!, $0) }) { x, _ in x }
                #expect(byID["go-ahead"]?.state == .succeeded && byID["go-ahead"]?.reason?.hasPrefix("approved by") == true)
                #expect(byID["expensive"]?.state == .succeeded)
                #expect(files.result("gate", "expensive", "stdout") == "ran\n")
                #expect(byID["never-approved"]?.state == .failed && byID["never-approved"]?.reason?.contains("not approved") == true)
                #expect(byID["behind-it"]?.state == .skipped)
            }
        }

        @Test func mapReplacementStringsMatchGNUParallel() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let inputs = ["a.tar.gz", "dir.x/file", "/abs/p.q/r.s", "noext", ".bashrc", "with space.txt", "quote'd\"", "$HOME", "trail/"]
            let template = ["printf", "[%s]\\n", "{}", "{.}", "{/}", "{//}", "{/.}", "{#}"]
            let parallel = try Testbed.run("/usr/bin/env", ["parallel", "--will-cite", "-j1", "-k", "-q"] + template + [":::"] + inputs)
            #expect(parallel.status == 0, "GNU parallel must be installed (scripts/setup): \(parallel.stderr)")
            try await CoordinatorFixture.with { f in
                let r = try f.drover(["map", "--name", "mapcmp", "--results", files.results, "--progress", "none", "-q", "-k"] + template + [":::"] + inputs)
                #expect(r.status == 0, "\(r.stderr)")
                #expect(r.stdout == parallel.stdout, "with -k, the jobs' stdout in input order")
                let ours = (1...inputs.count).map { files.result("mapcmp", String($0), "stdout") ?? "<missing>" }.joined()
                #expect(ours == parallel.stdout)
                // {%}: the slot on the host, 1…slots (h1 has 2).
                let s = try f.drover(["map", "--name", "slots", "--host", "h1", "--results", files.results, "--progress", "none", "echo", "{%}", ":::", "1", "2", "3", "4"])
                #expect(s.status == 0, "\(s.stderr)")
                let slots = (1...4).compactMap { files.result("slots", String($0), "stdout")?.trimmingCharacters(in: .whitespacesAndNewlines) }
                #expect(slots.count == 4 && slots.allSatisfy { $0 == "1" || $0 == "2" }, "\(slots)")
                // Inputs from stdin, progress as JSON lines for programs.
                let piped = try Testbed.run("/bin/sh", ["-c", "printf 'x y\\nz\\n' | \"$0\" map --state \"$1\" --inventory \"$2\" --name piped --results \"$3\" --progress json echo {}",
                                                        Testbed.droverBinary, f.state, f.inventory, files.results])
                #expect(piped.status == 0, "\(piped.stderr)")
                #expect(files.result("piped", "1", "stdout") == "x y\n" && files.result("piped", "2", "stdout") == "z\n")
                let objects = piped.stdout.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                #expect(!objects.isEmpty && objects.allSatisfy { $0 != nil }, "every progress line is a JSON object:\n\(piped.stdout)")
                #expect(objects.contains { $0?["type"] as? String == "job" && $0?["job"] as? String == "2" && $0?["state"] as? String == "succeeded" })
                #expect(objects.last??["type"] as? String == "progress" && objects.last??["succeeded"] as? Int == 2, "\(piped.stdout)")
            }
        }

        @Test func resubmittingRunsOnlyWhatDidNotSucceedOrChanged() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            func batch(_ fix: String) -> String {
                """
                {"batch": "resume", "jobs": [
                  {"id": "ok-1", "argv": ["echo", "one"]},
                  {"id": "ok-2", "argv": ["echo", "two"]},
                  {"id": "fix", "shell": "\(fix)"},
                  {"id": "after-fix", "after": ["fix"], "argv": ["true"]}
                ]}
                """
            }
            let file = try files.write("resume.json", batch("exit 1"))
            try await CoordinatorFixture.with { f in
                #expect(try f.runBatch(file, files).status == 1)
                let first = try f.batchJobs("resume")
                #expect(first["fix"]?.state == .failed && first["after-fix"]?.state == .skipped)
                // Again, unchanged: the failed job and its dependent run again; the others are kept.
                let again = try f.runBatch(file, files)
                #expect(again.stderr.contains("2 job(s) submitted, 2 kept"), "\(again.stderr)")
                let second = try f.batchJobs("resume")
                #expect(second["ok-1"]?.id == first["ok-1"]?.id && second["ok-2"]?.id == first["ok-2"]?.id)
                #expect(second["fix"]?.id != first["fix"]?.id)
                // Fixed: it succeeds, and so does its dependent; still nothing else runs.
                try files.write("resume.json", batch("exit 0"))
                let fixed = try f.runBatch(file, files)
                #expect(fixed.status == 0, "\(fixed.stderr)")
                let third = try f.batchJobs("resume")
                #expect(third.values.allSatisfy { $0.state == .succeeded })
                #expect(third["ok-1"]?.id == first["ok-1"]?.id && third["ok-1"]?.attempt == 1)
                // A changed spec runs again; --restart runs everything.
                let nothing = try f.runBatch(file, files)
                #expect(nothing.status == 0 && nothing.stderr.contains("0 job(s) submitted, 4 kept"), "\(nothing.stderr)")
                let restart = try f.runBatch(file, files, ["--restart"])
                #expect(restart.stderr.contains("4 job(s) submitted"), "\(restart.stderr)")
                #expect(try f.batchJobs("resume")["ok-1"]?.id != first["ok-1"]?.id)
            }
        }

        @Test func dryRunChangesNothingAndLimitRunsAPrefix() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            try files.write("in.txt", "input\n")
            let file = try files.write("plan.json", """
                {"batch": "plan", "jobs": [
                  {"id": "last", "after": ["middle"], "argv": ["true"]},
                  {"id": "middle", "after": ["first"], "argv": ["true"], "inputs": ["in.txt"]},
                  {"id": "first", "argv": ["true"]},
                  {"id": "alone", "argv": ["true"]}
                ]}
                """)
            try await CoordinatorFixture.with { f in
                let j = try f.journal()
                func counts() throws -> [Int] {
                    try ["jobs", "batches", "attempts"].map { try j.db.query("SELECT COUNT(*) AS n FROM \($0)").first?.int("n") ?? -1 }
                }
                let before = try counts()
                let lastEvent = try j.db.query("SELECT COALESCE(MAX(id), 0) AS n FROM events").first?.int("n") ?? 0
                let dry = try f.drover(["submit", file, "--dry-run", "--results", files.results])
                #expect(dry.status == 0, "\(dry.stderr)")
                #expect(try counts() == before, "--dry-run wrote to the journal")
                // The audit events a submit writes (the running coordinator may record its own
                // meanwhile, e.g. a host's agent events: those are not the dry run's).
                let written = try j.db.query("SELECT kind, message FROM events WHERE id > ? AND (job IS NOT NULL OR kind IN ('submitted', 'batch'))", .int(Int64(lastEvent)))
                    .map { "\($0.string("kind") ?? "?"): \($0.string("message") ?? "")" }
                #expect(written.isEmpty, "--dry-run wrote audit events: \(written)")
                #expect(!FileManager.default.fileExists(atPath: files.results))
                let lines = dry.stdout.split(separator: "\n").map(String.init)
                let order = ["first", "middle", "last", "alone"].map { id in lines.firstIndex { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first == Substring(id) } ?? -1 }
                #expect(order == order.sorted() && !order.contains(-1), "dependency order in the plan:\n\(dry.stdout)")
                #expect(dry.stdout.contains("in.txt") && dry.stdout.contains("nothing was submitted"), "\(dry.stdout)")
                #expect(dry.stdout.contains("(wave 1)"), "\(dry.stdout)")
                // --limit 2: the first two in dependency order only; submitting again runs the rest.
                let limited = try f.runBatch(file, files, ["--limit", "2"])
                #expect(limited.status == 0, "\(limited.stderr)")
                #expect(Set(try f.batchJobs("plan").keys) == ["first", "middle"])
                let rest = try f.runBatch(file, files)
                #expect(rest.status == 0 && rest.stderr.contains("2 job(s) submitted, 2 kept"), "\(rest.stderr)")
                #expect(Set(try f.batchJobs("plan").keys) == ["first", "middle", "last", "alone"])
            }
        }

        @Test func batchFilesWithMistakesAreRefusedWithTheirPaths() async throws {
            let files = try BatchFiles()
            defer { files.remove() }
            let file = try files.write("bad.json", """
                {"batch": "bad", "jobs": [
                  {"id": "a", "argv": ["true"], "after": ["c"]},
                  {"id": "b", "argv": ["true"], "after": ["a", "nope"]},
                  {"id": "c", "argv": ["true"], "after": ["b"]},
                  {"id": "a", "argv": ["true"]},
                  {"id": "d", "argv": ["true"], "timeuot": 5}
                ]}
                """)
            try await CoordinatorFixture.with { f in
                let r = try f.drover(["submit", file])
                #expect(r.status == 2)
                #expect(r.stderr.contains("jobs[1].after[1]: unknown job id \"nope\""), "\(r.stderr)")
                #expect(r.stderr.contains("jobs[3].id: duplicate job id \"a\""), "\(r.stderr)")
                #expect(r.stderr.contains("dependency cycle"), "\(r.stderr)")
                #expect(r.stderr.contains("jobs[4].timeuot: unknown key; did you mean `timeout`?"), "\(r.stderr)")
                #expect(try f.journal().batchJobs("bad").isEmpty)
            }
        }
    }
}

/// Validates a report against docs/batch-report.schema.json with python3-jsonschema.
func validateReport(_ path: String) throws {
    let schema = Testbed.repoRoot + "/docs/batch-report.schema.json"
    let script = "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))"
    let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
    let r = try Testbed.run("/usr/bin/env", [python, "-c", script, path, schema])
    #expect(r.status == 0, "report.json does not match its schema (python3-jsonschema from scripts/setup): \(r.stderr)")
}
