import DroverCore

/// `drover-agent tail [--from SEQ] [--follow [--heartbeat]]`: the event log from a sequence number.
///
/// With `--follow` it prints `{"caught_up":N}` once everything that already existed is out
/// (N: the last `seq` printed, or SEQ-1; or the log's last `seq` when the log ends before
/// SEQ-1, i.e. it was replaced), then keeps printing new lines as they are appended,
/// until its output is closed: the coordinator streams a host's events over one SSH channel
/// this way. `--heartbeat` adds a line `{"heartbeat":{…}}` whenever the heartbeat file
/// changes, which also makes a closed output noticed within a heartbeat interval. It sleeps
/// until the log or the heartbeat changes (`FileWatch`), never on a timer.
enum TailCommand {
    /// How much of the log one write carries at most (the log can be large; memory stays flat).
    static let chunkBytes = 1 << 20

    static func run(_ options: inout Options) throws(AgentError) -> Int32 {
        try options.allow(["--follow", "--heartbeat"])
        let dir = options.root
        guard let from = Int(options.values["--from"] ?? "1"), from >= 1 else { throw .usage("--from must be a sequence number, 1 or more") }
        let follow = options.flags.contains("--follow")
        let beats = options.flags.contains("--heartbeat")
        if beats && !follow { throw .usage("--heartbeat only applies to --follow") }
        StreamIO.ignoreBrokenPipes()

        var events = EventForwarder(dir: dir, from: from, heartbeats: beats, inlineOutput: false)
        guard events.backlog(), follow, events.caughtUp() else { return 0 }  // false: the reader went away
        let watch = FileWatch()
        while true {
            events.watchFiles(watch)
            guard events.forwardNew() else { return 0 }
            _ = watch.wait(timeout: nil)
        }
    }

    /// `{"heartbeat":…}` with the file's JSON as it is (re-encoded only if it spans lines);
    /// nil when it is not a JSON object (a partial or foreign file).
    static func heartbeatLine(_ bytes: [UInt8]) -> String? {
        guard let node = try? JSONParser.parse(bytes), node.objectMembers != nil else { return nil }
        var body = bytes[...]
        while let last = body.last, last == 0x0A || last == 0x0D || last == 0x20 || last == 0x09 { body = body.dropLast() }
        while let first = body.first, first == 0x20 || first == 0x09 { body = body.dropFirst() }
        let text = body.contains(0x0A) || body.contains(0x0D) ? node.jsonText : String(decoding: body, as: UTF8.self)
        return "{\"heartbeat\":" + text + "}"
    }
}
