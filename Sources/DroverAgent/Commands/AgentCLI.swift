import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `drover-agent` command line (parsed by hand: the agent links no argument-parser or Foundation).
public enum AgentCLI {
    static let usage = """
        usage: drover-agent <command> [options]

        commands:
          run [--detach] [--heartbeat-interval S]   run the agent (one per root); --detach returns after the first heartbeat
          status [--json]                           the agent and its attempts
          submit                                    read an attempt spec (JSON) from stdin and place it in the inbox
          send                                      read inbox commands (JSON lines) from stdin and place each, in order; prints "placed N"
          cancel JOB[/ATTEMPT]                      cancel a job's live attempts
          signal JOB[/ATTEMPT] SIGNAL               send a signal to a job's process group
          tail [--from SEQ] [--follow [--heartbeat]]
                                                    print event-log lines from SEQ (default 1); --follow prints {"caught_up":N}
                                                    and keeps following; --heartbeat adds {"heartbeat":…} lines when it changes
          link [--from SEQ] [--protocol N] [--keep DURATION] [--max-size SIZE] [--segment-size SIZE]
                                                    the coordinator's two-way channel: command lines (start, cancel,
                                                    signal, lease, facts) on stdin; on stdout a hello line, the events from SEQ
                                                    as tail --follow --heartbeat prints them, small results inline;
                                                    --keep/--max-size/--segment-size set the retention (retention.json)
          output JOB/ATTEMPT [--follow] [--stdout-only | --stderr-only]
                                                    copy an attempt's stdout to stdout and stderr to stderr; --follow copies
                                                    as they grow until the attempt has ended
          reap [--dry-run]                          kill processes with a Drover cookie that belong to no live attempt
          gc [--dry-run]                            remove collected attempt folders past the retention time or beyond the
                                                    root's cap, and event-log segments every coordinator has applied;
                                                    says what and why (the agent also does it hourly)
          stop [--kill-jobs] [--coordinator ID] [--keep-if-served]
                                                    stop the agent; its jobs keep running unless --kill-jobs; with
                                                    --coordinator only that coordinator leaves (its lease withdrawn,
                                                    --kill-jobs cancels only its attempts); --keep-if-served leaves
                                                    the agent running while another coordinator holds a live lease
          facts [--request JSON]                    print the host's facts as one line: OS release, kernel, CPU model,
                                                    GPUs, and each command of the request ({"commands":{NAME:LINE},
                                                    "timeout":S}) run with /bin/sh -c (link runs it when asked)
          --version                                 print the version and build hash

        every command takes --root DIR (default: $DROVER_ROOT, else ~/.drover).
        docs/agent.md explains the process model, docs/state-format.md the files.
        """

    /// Runs the command line and returns the exit status.
    public static func main(_ arguments: [String]) -> Int32 {
        var args = Array(arguments.dropFirst())
        guard let command = args.first else {
            print(usage)
            return 2
        }
        args.removeFirst()
        if command == "--version" || command == "version" {
            print("drover-agent \(AgentInfo.version) (build \(AgentInfo.buildHash))")
            return 0
        }
        if command == "--help" || command == "-h" || command == "help" {
            print(usage)
            return 0
        }
        do throws(AgentError) {
            var options = try Options(args)
            switch command {
            case "run": return try RunCommand.run(&options)
            case "status": return try StatusCommand.run(&options)
            case "submit", "send", "cancel", "signal": return try InboxCommand.run(command, &options)
            case "tail": return try TailCommand.run(&options)
            case "link": return try LinkCommand.run(&options)
            case "output": return try OutputCommand.run(&options)
            case "reap": return try ReapCommand.run(&options)
            case "gc": return try GCCommand.run(&options)
            case "stop": return try StopCommand.run(&options)
            case "facts": return try FactsCommand.run(&options)
            case "shim":
                guard options.positional.count == 2, let id = AttemptID(options.positional[1]) else { throw .usage("usage: drover-agent shim ROOT JOB/ATTEMPT [--reuse] (started by the agent)") }
                try options.allow(["--reuse"])
                return ShimProcess.run(dir: StateDirectory(root: options.positional[0]), first: id, reuse: options.flags.contains("--reuse"))
            default:
                var message = "unknown command \"\(command)\""
                if let s = Suggestion.nearest(to: command, among: ["run", "status", "submit", "send", "cancel", "signal", "tail", "link", "output", "reap", "gc", "stop", "facts"]) {
                    message += "; did you mean `\(s)`?"
                }
                throw .usage(message + " (see drover-agent --help)")
            }
        } catch {
            printError(error.description)
            if case .usage = error { return 2 }
            return 1
        }
    }

    static func printError(_ message: String) {
        let bytes = Array("drover-agent: error: \(message)\n".utf8)
        _ = bytes.withUnsafeBytes { posixWrite(2, $0.baseAddress, $0.count) }
    }
}

/// Options shared by the commands: `--root`, flags, `--name value` pairs, positionals.
struct Options {
    var root: StateDirectory
    var flags: Set<String> = []
    var values: [String: String] = [:]
    var positional: [String] = []
    private static let valued: Set<String> = ["--root", "--from", "--heartbeat-interval", "--coordinator", "--protocol", "--keep", "--max-size", "--segment-size", "--request"]

    init(_ args: [String]) throws(AgentError) {
        var i = 0
        var rootPath = LocalUser.environment("DROVER_ROOT") ?? LocalUser.home + "/.drover"
        while i < args.count {
            let a = args[i]
            if Self.valued.contains(a) {
                guard i + 1 < args.count else { throw .usage("\(a) needs a value") }
                if a == "--root" { rootPath = args[i + 1] } else { values[a] = args[i + 1] }
                i += 2
            } else if let eq = a.firstIndex(of: "="), a.hasPrefix("--"), Self.valued.contains(String(a[..<eq])) {
                let key = String(a[..<eq]), value = String(a[a.index(after: eq)...])
                if key == "--root" { rootPath = value } else { values[key] = value }
                i += 1
            } else if a.hasPrefix("--") {
                flags.insert(a)
                i += 1
            } else {
                positional.append(a)
                i += 1
            }
        }
        root = StateDirectory(root: rootPath)
    }

    /// Fails on flags the command does not know.
    func allow(_ known: Set<String>) throws(AgentError) {
        for f in flags where !known.contains(f) {
            var m = "unknown option \(f)"
            if let s = Suggestion.nearest(to: f, among: known.sorted()) { m += "; did you mean \(s)?" }
            throw .usage(m)
        }
    }
}
