import DroverCore

/// `drover map`'s options, read the way GNU parallel reads them: before the command, `--opt
/// value`, `--opt=value`, `-j4` or `-j 4`; the first word that is not an option starts the
/// command. An option parallel has and Drover does not is refused by name.
struct MapOptions {
    // Output
    var keepOrder = false
    var tag = false
    var tagString: String?
    var lineBuffer = false
    var verbose = false
    // Command
    var quote = false
    // Inputs
    var argFiles: [String] = []
    var null = false
    var delimiter: String?
    var replace: String?
    var colsep: String?
    var link = false
    var header: String?
    var maxArgs: Int?
    // Hosts and jobs
    var jobs: String?
    var sshLogins: [String] = []
    var timeout: String?
    var retries: Int?
    var halt: MapHalt = .never
    var transferFiles: [String] = []
    var returns: [String] = []
    var cleanup = false
    // Progress, logs, results
    var progress: ProgressChoice?
    var joblog: String?
    var results: String?
    /// `--results-layout parallel`: `--results DIR` holds parallel's `DIR/1/<value>/stdout, stderr, seq`.
    var parallelResults = false
    var dryRun = false
    // Resume
    var resume = false
    var resumeFailed = false
    var retryFailed = false
    // Drover's own
    var name: String?
    var host: String?
    var labels: [String] = []
    var slots: Int?
    var priority: Int?
    var mem: String?
    var env: [String] = []
    var cwd: String?
    var lostRetries: Int?
    var lease: String?
    var keepRunning = false
    var detach = false
    var onInterrupt: InterruptChoice?
    var help = false

    /// Options that take a value, by every name they have.
    private static let valued: Set<String> = [
        "--tagstring", "-a", "--arg-file", "-d", "--delimiter", "-I", "--replace", "-n", "--colsep", "-C", "--header", "-N", "--max-args",
        "-j", "--jobs", "-P", "--max-procs", "-S", "--sshlogin", "--timeout", "--retries", "--halt", "--halt-on-error",
        "--transferfile", "--tf", "--return", "--joblog", "--results", "--res", "--results-layout", "--name", "--host", "--on",
        "--slots", "--priority", "--mem", "--env", "--cwd", "--lost-retries", "--lease", "--on-interrupt",
        "--state", "--inventory",
    ]

    /// Options of parallel that Drover does not support (refused by name); anything else
    /// unknown is refused too, this list only gives the reason a better wording.
    private static let parallelOnly: [String: String] = [
        "--pipe": "Drover's jobs take their input from arguments, not stdin blocks",
        "--pipepart": "Drover's jobs take their input from arguments, not stdin blocks",
        "-X": "one job per input (or per -N group)", "-m": "one job per input (or per -N group)",
        "--xargs": "one job per input (or per -N group)",
        "-u": "output is always grouped per job", "--ungroup": "output is always grouped per job",
        "--onall": "run it with `drover run --host` per host", "--nonall": "run it with `drover run --host` per host",
        "--sqlmaster": "", "--sqlworker": "", "--semaphore": "", "--sem": "", "--fifo": "", "--cat": "",
        "--basefile": "use --transferfile", "--bf": "use --transferfile", "--trc": "use --transferfile, --return, --cleanup",
        "--transfer": "use --transferfile FILE",
        "--plus": "", "--rpl": "", "--nice": "", "--load": "", "--memfree": "", "--delay": "", "--shuf": "",
    ]

    /// Reads options from the start of `words`; returns the options and the rest (the command
    /// and its inputs). Throws `MapTemplateError` naming an unknown or malformed option.
    static func parse(_ words: [String]) throws(MapTemplateError) -> (MapOptions, rest: [String]) {
        var o = MapOptions()
        var i = 0
        func fail(_ message: String) -> MapTemplateError { MapTemplateError(message: message) }
        while i < words.count {
            let word = words[i]
            if word == "--" { i += 1; break }
            guard word.hasPrefix("-"), word.count > 1, word != "-" else { break }
            var name = word
            var value: String?
            if word.hasPrefix("--"), let eq = word.firstIndex(of: "=") {
                name = String(word[..<eq])
                value = String(word[word.index(after: eq)...])
            } else if !word.hasPrefix("--"), word.count > 2 {
                // `-j4`, `-N2`, `-S2/h1`: a short option with its value attached.
                let short = String(word.prefix(2))
                if valued.contains(short) {
                    name = short
                    value = String(word.dropFirst(2))
                }
            }
            if valued.contains(name), value == nil {
                guard i + 1 < words.count else { throw fail("\(name) needs a value") }
                i += 1
                value = words[i]
            }
            i += 1
            func int(_ v: String?) throws(MapTemplateError) -> Int {
                guard let v, let n = Int(v), n >= 0 else { throw fail("\(name) \(v ?? ""): expected a whole number") }
                return n
            }
            switch name {
            case "-k", "--keep-order": o.keepOrder = true
            case "--tag": o.tag = true
            case "--tagstring": o.tagString = value
            case "--line-buffer", "--lb": o.lineBuffer = true
            // --shell and --restart are what a map always does now (kept for older scripts).
            case "--group", "-g", "--will-cite", "--no-notice", "--shell", "--restart": break
            case "--fail-fast": o.halt = MapHalt(when: .now)
            case "--keep-going": o.halt = .never
            case "-q", "--quote": o.quote = true
            case "-a", "--arg-file": o.argFiles.append(value!)
            case "-0", "--null": o.null = true
            case "-d", "--delimiter": o.delimiter = Self.unescape(value!)
            case "-I", "--replace": o.replace = value
            case "-v", "--verbose": o.verbose = true
            case "--colsep", "-C": o.colsep = value
            case "--link", "--xapply": o.link = true
            case "--header": o.header = value
            case "-N", "-n", "--max-args": o.maxArgs = try int(value)
            case "-j", "--jobs", "-P", "--max-procs": o.jobs = value
            case "-S", "--sshlogin": o.sshLogins += value!.split(separator: ",").map(String.init)
            case "--timeout": o.timeout = value
            case "--retries": o.retries = try int(value)
            case "--halt", "--halt-on-error":
                guard let h = MapHalt(value!) else { throw fail("--halt \(value!): expected never, soon|now,fail|success|done=N or N% (e.g. now,fail=1)") }
                o.halt = h
            case "--transferfile", "--tf": o.transferFiles.append(value!)
            case "--return": o.returns.append(value!)
            case "--cleanup": o.cleanup = true
            case "--bar", "--eta": o.progress = .bar
            case "--progress":
                // parallel's --progress is a flag; Drover's takes a mode (auto, bar, lines, json, none).
                if i < words.count, let mode = ProgressChoice(rawValue: words[i]) {
                    o.progress = mode
                    i += 1
                } else {
                    o.progress = .bar
                }
            case "--joblog": o.joblog = value
            case "--results", "--res": o.results = value
            case "--results-layout":
                guard value == "parallel" || value == "drover" else { throw fail("--results-layout \(value!): expected parallel or drover") }
                o.parallelResults = value == "parallel"
            case "--dry-run", "--dryrun": o.dryRun = true
            case "--resume": o.resume = true
            case "--resume-failed": o.resumeFailed = true
            case "--retry-failed": o.retryFailed = true
            case "--name": o.name = value
            case "--host": o.host = value
            case "--on": o.labels.append(value!)
            case "--slots": o.slots = try int(value)
            case "--priority": o.priority = Int(value!) ?? 0
            case "--mem": o.mem = value
            case "--env": o.env.append(value!)
            case "--cwd": o.cwd = value
            case "--lost-retries": o.lostRetries = try int(value)
            case "--lease": o.lease = value
            case "--keep-running": o.keepRunning = true
            case "--detach": o.detach = true
            case "--on-interrupt":
                guard let c = InterruptChoice(rawValue: value!) else { throw fail("--on-interrupt \(value!): expected ask, cancel or leave") }
                o.onInterrupt = c
            case "-h", "--help": o.help = true
            case "--state", "--inventory":
                throw fail("\(name) goes before parallel's options: drover map \(name) \(value!) [options] command ::: inputs")
            default:
                if let why = parallelOnly[name] {
                    throw fail("parallel's option \(name) is not supported by drover map\(why.isEmpty ? "" : ": " + why) (docs/parallel.md)")
                }
                throw fail("unknown option \(name) (drover help map lists the options; docs/parallel.md compares them with parallel's)")
            }
        }
        if o.resume && o.resumeFailed { throw fail("--resume and --resume-failed exclude each other") }
        if o.retryFailed && o.joblog == nil { throw fail("--retry-failed needs --joblog FILE (the jobs to run again are read from it)") }
        return (o, Array(words[i...]))
    }
}

extension MapOptions {
    /// `-d`'s value with parallel's backslash escapes (`\n`, `\t`, `\r`, `\0`, `\\`) turned into characters.
    static func unescape(_ text: String) -> String {
        var out = ""
        var escaped = false
        for c in text {
            if escaped {
                switch c {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "0": out.append("\0")
                default: out.append(c)
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        if escaped { out.append("\\") }
        return out
    }
}

/// parallel's `--halt`: when to stop the map early, and how.
struct MapHalt: Equatable {
    enum When: String { case never, soon, now }
    enum Why: String { case fail, success, done }
    var when: When
    var why: Why = .fail
    /// How many jobs (or, with `percent`, which percentage of them).
    var count = 1
    var percent = false

    static let never = MapHalt(when: .never)

    /// Reads `never`, `soon,fail=3`, `now,success=10%`, and the old forms 0, 1, 2, -1, -2, N%.
    init?(_ text: String) {
        switch text {
        case "0", "never": self.init(when: .never); return
        case "1": self.init(when: .soon); return
        case "2": self.init(when: .now); return
        case "-1": self.init(when: .soon, why: .success); return
        case "-2": self.init(when: .now, why: .success); return
        default: break
        }
        if text.hasSuffix("%"), let n = Int(text.dropLast()), (1...99).contains(n) {
            self.init(when: .soon, count: n, percent: true)
            return
        }
        let parts = text.split(separator: ",", maxSplits: 1)
        guard parts.count == 2, let when = When(rawValue: String(parts[0])), when != .never else { return nil }
        let condition = parts[1].split(separator: "=", maxSplits: 1)
        guard condition.count == 2, let why = Why(rawValue: String(condition[0])) else { return nil }
        var amount = String(condition[1])
        let percent = amount.hasSuffix("%")
        if percent { amount.removeLast() }
        guard let n = Int(amount), n >= 1, !percent || n <= 100 else { return nil }
        self.init(when: when, why: why, count: n, percent: percent)
    }

    init(when: When, why: Why = .fail, count: Int = 1, percent: Bool = false) {
        self.when = when
        self.why = why
        self.count = count
        self.percent = percent
    }

    /// Whether the map stops, given the jobs so far (`total` of them in the map).
    func reached(failed: Int, succeeded: Int, total: Int) -> Bool {
        guard when != .never else { return false }
        let n = switch why {
        case .fail: failed
        case .success: succeeded
        case .done: failed + succeeded
        }
        guard n > 0 else { return false }
        return percent ? n * 100 >= count * total : n >= count
    }
}
