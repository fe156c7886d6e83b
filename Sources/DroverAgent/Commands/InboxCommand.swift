import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `submit`, `cancel` and `signal`: place one command file in the inbox by atomic rename;
/// `send`: place one per line of stdin, in order.
enum InboxCommand {
    static func run(_ command: String, _ options: inout Options) throws(AgentError) -> Int32 {
        try options.allow([])
        let dir = options.root
        try dir.prepare()
        // Work is never placed where an agent of another machine runs (a shared home).
        try Ownership.checkNotForeign(dir)
        var o = JSONObject()
        switch command {
        case "submit":
            guard options.positional.isEmpty else { throw .usage("submit reads the spec from stdin; it takes no arguments") }
            let input = try readStandardInput(limit: 4 << 20, what: "the spec on stdin")
            let node: JSONNode
            do { node = try JSONParser.parse(input) } catch { throw .invalid("stdin: malformed JSON at line \(error.position.line), column \(error.position.column): \(error.message)") }
            let spec: AttemptSpec
            switch AttemptSpec.parse(node, file: "stdin") {
            case .success(let s): spec = s
            case .failure(let e): throw .invalid(e.description)
            }
            o.set("type", "start")
            o.set("spec", raw: spec.json)
            try place(o.text, in: dir)
            print("submitted \(spec.id)")
        case "send":
            guard options.positional.isEmpty else { throw .usage("send reads commands (JSON lines) from stdin; it takes no arguments") }
            return try send(dir)
        case "cancel", "signal":
            let expected = command == "cancel" ? 1 : 2
            guard options.positional.count == expected else {
                throw .usage(command == "cancel" ? "usage: drover-agent cancel JOB[/ATTEMPT]" : "usage: drover-agent signal JOB[/ATTEMPT] SIGNAL")
            }
            let target = options.positional[0]
            let parts = target.split(separator: "/")
            guard let job = parts.first.map(String.init), AttemptID.isValidJob(job), parts.count <= 2 else { throw .usage("\"\(target)\" is not JOB or JOB/ATTEMPT") }
            o.set("type", command)
            o.set("job", job)
            if parts.count == 2 {
                guard let n = Int(parts[1]), n > 0 else { throw .usage("\"\(target)\": the attempt must be a number") }
                o.set("attempt", n)
            }
            if command == "signal" {
                guard signalNumber(options.positional[1]) != nil else { throw .usage("unknown signal \"\(options.positional[1])\"") }
                o.set("signal", options.positional[1])
            }
            try place(o.text, in: dir)
            print("\(command) requested for \(target)")
        default:
            throw .usage("unknown command \(command)")
        }
        return 0
    }

    /// Writes a whole command file under a hidden name, then renames it into the inbox.
    ///
    /// The name is `<nanoseconds>-<pid>-<random>.json`, or `<nanoseconds>-<pid>-<order>.json`
    /// for the commands of one `send` (the same stamp, `order` zero-padded: they sort in input
    /// order). With `durable: false` the caller makes the placement durable (one `syncfs`).
    static func place(_ text: String, in dir: StateDirectory, stamp: String? = nil, order: Int? = nil, durable: Bool = true) throws(AgentError) {
        let prefix = stamp ?? uniqueStamp()
        let unique = order.map { prefix + "-" + String(String($0 + 100_000_000).dropFirst()) } ?? "\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
        let tmp = "\(dir.inbox)/.\(unique).tmp"
        let final = "\(dir.inbox)/\(unique).json"
        do {
            try AtomicFile.write(Array((text + "\n").utf8), to: tmp, durable: durable)
        } catch { throw .system(error) }
        if rename(tmp, final) != 0 {
            let e = SystemError.current("rename into the inbox", path: final)
            unlink(tmp)
            throw .system(e)
        }
    }

    /// `<nanoseconds since the epoch>-<pid>`: unique to this process and moment.
    static func uniqueStamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return "\(ts.tv_sec)\(String(ts.tv_nsec + 1_000_000_000).dropFirst())-\(getpid())"
    }

    /// The most `send` reads from stdin.
    static let sendLimit = 16 << 20

    /// `send`: one inbox command per line of stdin, placed in order. Returns the exit status.
    static func send(_ dir: StateDirectory) throws(AgentError) -> Int32 {
        let input = try readStandardInput(limit: sendLimit, what: "stdin")
        let stamp = uniqueStamp()
        /// Makes the placed commands durable with one `syncfs` (as the agent does for a batch).
        func finish(_ placed: Int) {
            if placed > 0 { syncFilesystem(dir.root) }
            print("placed \(placed)")
        }
        var placed = 0
        var failed = false
        var lineNumber = 0
        for raw in input.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = raw[...]
            while let c = line.last, c == 0x0D || c == 0x20 || c == 0x09 { line = line.dropLast() }
            while let c = line.first, c == 0x20 || c == 0x09 { line = line.dropFirst() }
            if line.isEmpty { continue }
            let node: JSONNode
            do { node = try JSONParser.parse(Array(line)) } catch {
                AgentCLI.printError("stdin line \(lineNumber): malformed JSON at column \(error.position.column): \(error.message); not placed")
                failed = true
                continue
            }
            guard node.objectMembers != nil, node["type"]?.stringValue != nil else {
                AgentCLI.printError("stdin line \(lineNumber): not a command (a JSON object with a string \"type\"); not placed")
                failed = true
                continue
            }
            do throws(AgentError) {
                try place(String(decoding: line, as: UTF8.self), in: dir, stamp: stamp, order: lineNumber, durable: false)
            } catch {
                finish(placed)
                throw .invalid("stdin line \(lineNumber): \(error.description); this and the following lines were not placed")
            }
            placed += 1
        }
        finish(placed)
        return failed ? 1 : 0
    }

    /// All of stdin, refusing more than `limit` bytes.
    static func readStandardInput(limit: Int, what: String) throws(AgentError) -> [UInt8] {
        var input = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { posixRead(0, $0.baseAddress, 65536) }
            if n < 0 && currentErrno() == EINTR { continue }
            if n < 0 { throw .system(.current("read", path: "stdin")) }
            if n == 0 { break }
            input += buffer[0..<n]
            if input.count > limit { throw .invalid("\(what) is larger than \(limit >> 20) MiB") }
        }
        return input
    }
}
