import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import DroverSSH
import Foundation

/// `drover reap`: kill leftover processes on hosts.
struct ReapCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reap",
        abstract: "Kill processes on hosts that belong to no live attempt, and report what was killed; with --gc, also clean the hosts' state directories.",
        discussion: """
            Every process a job starts carries a cookie (DROVER_COOKIE) naming its attempt; the agent on each host finds those whose attempt is over or whose supervisor vanished, and kills them. The coordinator already kills replaced attempts when a host comes back; this is the manual sweep.

            With --gc each host's agent also removes what its retention allows now (as it does hourly by itself): attempt folders whose results the coordinator has collected, once the inventory's `retention.keep` (default 7d) has passed or, oldest first, while the state directory is over `retention.max_size` (default 2 GiB or 5 % of its file system, whichever is smaller); and event-log segments every coordinator has applied. It never removes a live attempt or one whose result was not collected, and prints what it removed and why.

            Examples:
              drover reap
              drover reap closet-1 --dry-run
              drover reap --gc --dry-run
            """
    )

    @OptionGroup var inventoryOptions: InventoryOptions

    @Flag(name: .long, help: "Only report what would be killed (and, with --gc, removed).")
    var dryRun = false

    @Flag(name: .long, help: "Also remove collected attempt folders and applied event-log segments the hosts' retention allows.")
    var gc = false

    @Flag(name: .long, help: "Print a JSON array: host, ok, output.")
    var json = false

    @Argument(help: ArgumentHelp("Only these hosts (default: all).", valueName: "host"))
    var names: [String] = []

    struct Result: Encodable { var host: String; var ok: Bool; var output: String }

    func run() async throws {
        let inventory = try inventoryOptions.load()
        let hosts = try inventoryOptions.select(names, from: inventory)
        let dry = dryRun
        let gc = gc
        let results = await withTaskGroup(of: (Int, AgentRemote.Outcome).self) { group in
            for (i, h) in hosts.enumerated() {
                group.addTask {
                    var outcome = await AgentRemote.run(on: h, "reap" + (dry ? " --dry-run" : ""))
                    if gc {
                        let collected = await AgentRemote.run(on: h, "gc" + (dry ? " --dry-run" : ""), timeout: 600)
                        outcome.ok = outcome.ok && collected.ok
                        outcome.output += "\n" + collected.output
                    }
                    return (i, outcome)
                }
            }
            var out = [Result?](repeating: nil, count: hosts.count)
            for await (i, r) in group { out[i] = Result(host: r.host, ok: r.ok, output: r.output) }
            return out.compactMap { $0 }
        }
        if json {
            print(try Terminal.json(results))
        } else {
            for r in results {
                for line in r.output.split(separator: "\n") { print("\(r.host): \(line)") }
            }
        }
        if results.contains(where: { !$0.ok }) { throw ExitCode(1) }
    }
}

/// Runs a `drover-agent` command on a host (whatever build runs there).
enum AgentRemote {
    struct Outcome: Sendable { var host: String; var ok: Bool; var output: String }

    static func run(on host: HostSpec, _ arguments: String, timeout: Double = 60) async -> Outcome {
        let q = RemotePath.shell
        let root = host.root
        // The newest agent binary deployed there (deploy names them by build).
        let line = "a=$(ls -t \(q(root + "/bin"))/drover-agent-* 2>/dev/null | head -n 1); if [ -z \"$a\" ]; then echo 'no agent deployed (run drover deploy)' >&2; exit 3; fi; \"$a\" \(arguments) --root \(q(root))"
        do throws(SSHError) {
            let session = try await host.openSession()
            defer { Task { await session.shutdown() } }
            let r = try await session.run(line, timeout: timeout)
            let text = (r.stdoutText + r.stderrText).trimmingCharacters(in: .whitespacesAndNewlines)
            await session.shutdown()
            return Outcome(host: host.name, ok: r.status == .exited(0), output: text)
        } catch {
            return Outcome(host: host.name, ok: false, output: error.description)
        }
    }
}
