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
    private var cursor: EventCursor
    private var lastSeq: Int
    private var lastBeat: [UInt8] = []
    /// The cursor's generation when `events.log` was last watched (it is watched anew after a rotation).
    private var watchedGeneration = -1

    init(dir: StateDirectory, from: Int, heartbeats: Bool, inlineOutput: Bool) {
        self.dir = dir
        self.from = from
        self.heartbeats = heartbeats
        self.inlineOutput = inlineOutput
        cursor = EventCursor(dir: dir, from: from)
        lastSeq = from - 1
    }

    /// Everything logged from `from` so far, across segments, in bounded chunks; false when the reader is gone.
    mutating func backlog() -> Bool {
        while true {
            let chunk = cursor.next(limit: TailCommand.chunkBytes)
            if chunk.isEmpty { return true }
            let lines = chunk.filter { $0.seq >= from }
            guard let last = lines.last else { continue }  // a chunk of lines before SEQ
            lastSeq = max(lastSeq, last.seq)
            if !write(lines.map(\.line)) { return false }
        }
    }

    /// `{"caught_up":N}` after the backlog; false when the reader is gone.
    mutating func caughtUp() -> Bool {
        // A log that ends before SEQ-1 is not the one the reader knew (the state directory was
        // replaced): caught_up then says where it really ends, so the reader can start over.
        if lastSeq == from - 1, from > 1, let end = EventSegments.lastSeq(dir), end < lastSeq { lastSeq = end }
        return StreamIO.writeAll(1, Array("{\"caught_up\":\(lastSeq)}\n".utf8))
    }

    /// What is watched while following: the folder (the heartbeat is renamed into place, the
    /// log rotated) and the log itself (kqueue reports appends only on the file; it may not exist
    /// yet), watched anew once the cursor moved past a rotation.
    mutating func watchFiles(_ watch: FileWatch) {
        if !watch.isWatching(dir.root) { watch.watch(dir.root) }
        if watchedGeneration != cursor.generation {
            watch.unwatch(dir.eventLog)
            watchedGeneration = cursor.generation
        }
        if !watch.isWatching(dir.eventLog) { watch.watch(dir.eventLog) }
    }

    /// New events and a changed heartbeat, in one write; false when the reader is gone.
    mutating func forwardNew() -> Bool {
        var text = ""
        while true {
            let chunk = cursor.next(limit: TailCommand.chunkBytes)
            if chunk.isEmpty { break }
            for (seq, line) in chunk where seq >= from {
                lastSeq = max(lastSeq, seq)
                text += (inlineOutput ? withInlineOutput(line) : line) + "\n"
            }
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
