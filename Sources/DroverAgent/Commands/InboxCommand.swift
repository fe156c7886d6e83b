import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `submit`, `cancel` and `signal`: place one command file in the inbox by atomic rename.
enum InboxCommand {
    static func run(_ command: String, _ options: inout Options) throws(AgentError) -> Int32 {
        try options.allow([])
        let dir = options.root
        try dir.prepare()
        var o = JSONObject()
        switch command {
        case "submit":
            guard options.positional.isEmpty else { throw .usage("submit reads the spec from stdin; it takes no arguments") }
            var input = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { posixRead(0, $0.baseAddress, 65536) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                input += buffer[0..<n]
                if input.count > 4 << 20 { throw .invalid("the spec on stdin is larger than 4 MiB") }
            }
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
    static func place(_ text: String, in dir: StateDirectory) throws(AgentError) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let unique = "\(ts.tv_sec)\(String(ts.tv_nsec + 1_000_000_000).dropFirst())-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let tmp = "\(dir.inbox)/.\(unique).tmp"
        let final = "\(dir.inbox)/\(unique).json"
        do {
            try AtomicFile.write(Array((text + "\n").utf8), to: tmp)
        } catch { throw .system(error) }
        if rename(tmp, final) != 0 { throw .system(.current("rename into the inbox", path: final)) }
    }
}
