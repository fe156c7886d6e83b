import ArgumentParser
import DroverCore
import Foundation
import Testing
@testable import DroverCommands

/// `drover <sub> --help` and `drover help <sub>` for every subcommand of the command tree, on the
/// built `drover` binary, with arguments around them; and `--help` meant for a job stays the job's.
@Suite("Help for every subcommand")
struct HelpTests {
    /// The built `drover`, next to the test bundle.
    static var drover: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("drover").path
    }

    /// Every command path under `drover`, e.g. ["hosts", "quarantine"], from the configuration.
    static func paths(_ command: ParsableCommand.Type = Drover.self, prefix: [String] = []) -> [[String]] {
        command.configuration.subcommands.flatMap { sub -> [[String]] in
            let path = prefix + [sub._commandName]
            return [path] + paths(sub, prefix: path)
        }
    }

    func run(_ args: [String]) throws -> (status: Int32, out: String) {
        // A state directory and an inventory that do not exist: nothing may run or be created.
        let r = try ChildProcess.run([Self.drover] + args, environment: ["PATH=/usr/bin:/bin", "HOME=/nonexistent", "DROVER_STATE=/nonexistent/state"], timeout: 30)
        return (r.status, r.stdoutText + r.stderrText)
    }

    @Test func theTreeIsFound() {
        let all = Self.paths()
        #expect(all.contains(["map"]) && all.contains(["hosts", "quarantine"]) && all.contains(["config"]), "\(all)")
    }

    @Test(arguments: HelpTests.paths())
    func everyFormShowsTheUsage(path: [String]) throws {
        let usage = "USAGE: drover " + path.joined(separator: " ")
        let forms = [path + ["--help"], path + ["-h"], ["help"] + path, path + ["--help", "extra-word"], path + ["--state", "/nonexistent/state", "--help"]]
        for args in forms {
            // --state is not an option of every command; those refuse it, but must still not run.
            let r = try run(args)
            if args.contains("--state"), r.status != 0, !r.out.contains(usage) {
                #expect(!r.out.contains("submitted"), "drover \(args.joined(separator: " ")) ran something: \(r.out)")
                continue
            }
            #expect(r.status == 0, "drover \(args.joined(separator: " ")) exited \(r.status): \(r.out.prefix(300))")
            #expect(r.out.contains(usage), "drover \(args.joined(separator: " ")) printed no \"\(usage)\" line: \(r.out.prefix(300))")
        }
    }

    @Test func aHelpOptionAfterTheJobsCommandIsTheJobs() throws {
        let run = try #require(try Drover.parseAsRoot(["run", "--", "ls", "--help"]) as? RunCommand)
        #expect(run.command == ["ls", "--help"])
        let bare = try #require(try Drover.parseAsRoot(["run", "--", "--help"]) as? RunCommand)
        #expect(bare.command == ["--help"])
        let map = try #require(try Drover.parseAsRoot(["map", "ls", "--help", ":::", "a"]) as? MapCommand)
        #expect(!map.asksForHelp, "after the command's first word, --help is the job's")
        #expect(try #require(try Drover.parseAsRoot(["map", "--", "--help", ":::", "a"]) as? MapCommand).asksForHelp == false)
        // On the binary: map's plan shows the job's command line with --help in it.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-help-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try ChildProcess.run([Self.drover, "map", "--state", dir + "/state", "--results", dir + "/results", "--dry-run", "ls", "--help", ":::", "a"],
                                     environment: ["PATH=/usr/bin:/bin", "HOME=" + dir], timeout: 30)
        #expect(r.status == 0 && r.stdoutText.contains("ls --help a"), "\(r.stdoutText)\(r.stderrText)")
    }
}
