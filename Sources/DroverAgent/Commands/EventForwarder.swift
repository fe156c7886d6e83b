import DroverCore

/// Copies the event log to stdout from a sequence number, then follows it: what `tail` and
/// `link` send up to the coordinator. Optionally adds `{"heartbeat":…}` lines when the
/// heartbeat file changes, and an end transition's small stdout and stderr inline.
struct EventForwarder {
    let dir: StateDirectory
    let from: Int
    /// Add `{"heartbeat":…}` lines when the heartbeat file changes.
    let heartbeats: Bool
    /// Add `"output":{…}` to end transitions whose outputs are small (`link`).
    let inlineOutput: Bool
    private var offset = 0
    private var lastSeq: Int
    private var lastBeat: [UInt8] = []

    init(dir: StateDirectory, from: Int, heartbeats: Bool, inlineOutput: Bool) {
        self.dir = dir
        self.from = from
        self.heartbeats = heartbeats
        self.inlineOutput = inlineOutput
        lastSeq = from - 1
    }

    /// Everything logged from `from` so far, in bounded chunks; false when the reader is gone.
    mutating func backlog() -> Bool {
        while true {
            let (lines, next) = EventLog.read(path: dir.eventLog, from: from, offset: offset, limit: TailCommand.chunkBytes)
            if next == offset { return true }
            offset = next
            guard !lines.isEmpty else { continue }  // a chunk of lines before SEQ
            for line in lines.reversed() {
                if let seq = (try? JSONParser.parse(line))?["seq"]?.intValue { lastSeq = max(lastSeq, seq); break }
            }
            if !write(lines) { return false }
        }
    }

    /// `{"caught_up":N}` after the backlog; false when the reader is gone.
    mutating func caughtUp() -> Bool {
        // A log that ends before SEQ-1 is not the one the reader knew (the state directory was
        // replaced): caught_up then says where it really ends, so the reader can start over.
        if lastSeq == from - 1, from > 1, let end = EventLog.lastSeq(path: dir.eventLog), end < lastSeq { lastSeq = end }
        return StreamIO.writeAll(1, Array("{\"caught_up\":\(lastSeq)}\n".utf8))
    }

    /// What is watched while following: the folder (the heartbeat is renamed into place) and
    /// the log itself (kqueue reports appends only on the file; it may not exist yet).
    func watchFiles(_ watch: FileWatch) {
        if !watch.isWatching(dir.root) { watch.watch(dir.root) }
        if !watch.isWatching(dir.eventLog) { watch.watch(dir.eventLog) }
    }

    /// New events and a changed heartbeat, in one write; false when the reader is gone.
    mutating func forwardNew() -> Bool {
        var text = ""
        while true {
            let (lines, next) = EventLog.read(path: dir.eventLog, from: 1, offset: offset, limit: TailCommand.chunkBytes)
            if next == offset { break }
            offset = next
            for line in lines { text += (inlineOutput ? withInlineOutput(line) : line) + "\n" }
        }
        if heartbeats, let bytes = try? LocalFile.read(dir.heartbeatFile), bytes != lastBeat, let line = TailCommand.heartbeatLine(bytes) {
            lastBeat = bytes
            text += line + "\n"
        }
        return text.isEmpty || StreamIO.writeAll(1, Array(text.utf8))
    }

    private func write(_ lines: [String]) -> Bool {
        var text = ""
        for line in lines { text += (inlineOutput ? withInlineOutput(line) : line) + "\n" }
        return StreamIO.writeAll(1, Array(text.utf8))
    }

    /// `line` with `"output":{…}` added when it is an end transition whose stdout and stderr
    /// are both at most `WireProtocol.inlineOutputLimit` bytes.
    func withInlineOutput(_ line: String) -> String {
        guard line.contains("\"transition\""), line.hasSuffix("}"), let node = try? JSONParser.parse(Array(line.utf8)),
              case .transition(let t) = AgentEvent.parse(node), t.state.isFinal else { return line }
        let id = AttemptID(job: t.job, attempt: t.attempt)
        var streams: [[UInt8]] = []
        for path in [dir.stdoutFile(id), dir.stderrFile(id)] {
            let size = LocalFile.size(path) ?? 0
            guard size <= WireProtocol.inlineOutputLimit else { return line }
            streams.append(size == 0 ? [] : ((try? LocalFile.read(path)) ?? []))
        }
        guard streams.allSatisfy({ $0.count <= WireProtocol.inlineOutputLimit }) else { return line }
        return String(line.dropLast()) + "," + InlineOutput(stdout: streams[0], stderr: streams[1]).member + "}"
    }
}
