import DroverCore

/// What the soak reads back from one host: the agent's event log and the evidence lines
/// that successful attempts appended.
struct AgentRecords {
    /// One `transition` line of `events.log` about a job of the soak's coordinator.
    struct Transition {
        var seq: Int
        var job: Int
        var attempt: Int
        var state: String
        var exitCode: Int?
    }

    /// One line of a `checkpointed` job's progress log: its start (with the count it starts
    /// from) or one count reached, with the host's clock (this machine's: the testbed shares it).
    struct Progress {
        var job: Int
        var attempt: Int
        var start: Bool
        var count: Int
        var time: Double
        var restored: Bool
    }

    var host: String
    var transitions: [Transition] = []
    /// The highest `seq` in the log (0 when it is empty or missing).
    var lastSeq = 0
    /// Lines that were not JSON, or whose `seq` did not follow the previous one.
    var malformed = 0
    /// (job, attempt, unix time) of every evidence line: one per side effect.
    var evidence: [(job: Int, attempt: Int, time: Double)] = []
    /// The progress lines of `checkpointed` jobs that ran on this host.
    var progress: [Progress] = []
    /// The log as read (kept with the journal when a run fails).
    var text = ""
    /// Where the first out-of-order `seq` was (for the report).
    var firstDisorder: String?

    /// Reads `ROOT/events.log`, and the evidence and progress files in the host's home (as root, inside it).
    static func read(_ testbed: Testbed, host: String, root: String, files: RunFiles, coordinator cid: String) throws -> AgentRecords {
        var out = AgentRecords(host: host)
        let log = try testbed.shell(host, #"cat "$1/events.log" 2>/dev/null || true"#, root, timeout: 120)
        out.text = log
        var previous = 0
        for line in log.split(separator: "\n") {
            guard let node = try? JSONParser.parse(String(line)), let seq = node["seq"]?.intValue else {
                out.malformed += 1
                continue
            }
            if seq != previous + 1 {
                out.malformed += 1
                if out.firstDisorder == nil { out.firstDisorder = "seq \(seq) after \(previous)" }
            }
            previous = seq
            out.lastSeq = max(out.lastSeq, seq)
            guard node["type"]?.stringValue == "transition", let name = node["job"]?.stringValue, name.hasPrefix(cid + "-"),
                  let job = Int(name.dropFirst(cid.count + 1)), let attempt = node["attempt"]?.intValue,
                  let state = node["state"]?.stringValue else { continue }
            out.transitions.append(Transition(seq: seq, job: job, attempt: attempt, state: state, exitCode: node["exit_code"]?.intValue))
        }
        let marks = try testbed.shell(host, #"cat "/home/dtest/$1" 2>/dev/null || true"#, files.evidence)
        for line in marks.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.count >= 2, words[0].hasPrefix(cid + "-"), let job = Int(words[0].dropFirst(cid.count + 1)), let n = Int(words[1]) else { continue }
            out.evidence.append((job, n, words.count >= 4 ? Double(words[3]) ?? 0 : 0))
        }
        let counts = try testbed.shell(host, #"cat "/home/dtest/$1" 2>/dev/null || true"#, files.progress)
        for line in counts.split(separator: "\n") {
            let w = line.split(separator: " ").map(String.init)
            guard w.count >= 5, w[0].hasPrefix(cid + "-"), let job = Int(w[0].dropFirst(cid.count + 1)), let n = Int(w[1]),
                  let count = Int(w[3]), let time = Double(w[4]) else { continue }
            out.progress.append(Progress(job: job, attempt: n, start: w[2] == "start", count: count, time: time, restored: w.count > 5 && w[5] == "restored"))
        }
        return out
    }
}
