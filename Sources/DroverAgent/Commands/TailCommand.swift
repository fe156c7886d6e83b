import DroverCore

/// `drover-agent tail [--from SEQ] [--follow]`: the event log from a sequence number.
///
/// With `--follow` it keeps printing new lines as they are appended, until its output is
/// closed: the coordinator streams a host's events over one SSH channel this way.
enum TailCommand {
    static func run(_ options: inout Options) throws(AgentError) -> Int32 {
        try options.allow(["--follow"])
        let dir = options.root
        guard let from = Int(options.values["--from"] ?? "1"), from >= 1 else { throw .usage("--from must be a sequence number, 1 or more") }
        var offset = 0
        var first = true
        while true {
            let (lines, next) = EventLog.read(path: dir.eventLog, from: first ? from : 1, offset: offset)
            first = false
            if !lines.isEmpty {
                let text = lines.joined(separator: "\n") + "\n"
                let bytes = Array(text.utf8)
                var written = 0
                while written < bytes.count {
                    let n = bytes.withUnsafeBytes { posixWrite(1, $0.baseAddress! + written, $0.count - written) }
                    if n <= 0 { return 0 }  // the reader went away
                    written += n
                }
            }
            offset = next
            if !options.flags.contains("--follow") { return 0 }
            sleepSeconds(0.02)
        }
    }
}
