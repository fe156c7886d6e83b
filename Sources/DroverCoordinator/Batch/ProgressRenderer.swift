import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A host line of the progress display.
public struct HostProgress: Sendable, Equatable {
    /// The host's name.
    public var name: String
    /// The host's liveness: up, suspect, down, connecting, reconciling or unknown.
    public var state: String
    /// Slots taken by running jobs.
    public var usedSlots: Int
    /// The host's slot count, nil when unknown.
    public var slots: Int?
    /// Seconds since the host's last heartbeat, nil when none arrived.
    public var heartbeatAge: Double?

    /// Creates a host line.
    public init(name: String, state: String, usedSlots: Int = 0, slots: Int? = nil, heartbeatAge: Double? = nil) {
        self.name = name
        self.state = state
        self.usedSlots = usedSlots
        self.slots = slots
        self.heartbeatAge = heartbeatAge
    }
}

/// A snapshot of one batch.
public struct BatchProgress: Sendable, Equatable {
    /// The batch's name.
    public var batch: String
    /// Jobs in the batch.
    public var total: Int
    /// Jobs that succeeded.
    public var succeeded: Int
    /// Jobs that failed for good.
    public var failed: Int
    /// Jobs skipped (a dependency failed).
    public var skipped: Int
    /// Jobs cancelled.
    public var cancelled: Int
    /// Jobs running (their process started).
    public var running: Int
    /// Jobs dispatched to a host whose process has not started yet.
    public var starting: Int
    /// Jobs queued, including those waiting for a retry back-off.
    public var queued: Int
    /// Jobs waiting for dependencies or for an approval.
    public var waiting: Int
    /// Seconds since the batch was submitted.
    public var elapsed: Double
    /// Seconds left, nil when unknown.
    public var eta: Double?
    /// The hosts running the batch.
    public var hosts: [HostProgress]
    /// Jobs that reached a final state.
    public var done: Int { succeeded + failed + skipped + cancelled }

    /// Creates a snapshot.
    public init(
        batch: String, total: Int, succeeded: Int = 0, failed: Int = 0, skipped: Int = 0, cancelled: Int = 0,
        running: Int = 0, starting: Int = 0, queued: Int = 0, waiting: Int = 0, elapsed: Double = 0, eta: Double? = nil,
        hosts: [HostProgress] = []
    ) {
        self.batch = batch
        self.total = total
        self.succeeded = succeeded
        self.failed = failed
        self.skipped = skipped
        self.cancelled = cancelled
        self.running = running
        self.starting = starting
        self.queued = queued
        self.waiting = waiting
        self.elapsed = elapsed
        self.eta = eta
        self.hosts = hosts
    }
}

/// One state change of a job in the batch.
public struct ProgressChange: Sendable, Equatable {
    /// When the change happened, in unix seconds.
    public var time: Double
    /// The job's id in the batch.
    public var job: String
    /// The attempt number, nil when the change is not about an attempt.
    public var attempt: Int?
    /// The host of the attempt, nil when none.
    public var host: String?
    /// The new state: queued, dispatched, running, succeeded, failed, cancelled, skipped, waiting or approval.
    public var state: String
    /// Why, or what happened; empty when nothing to add.
    public var message: String

    /// Creates a change.
    public init(time: Double, job: String, attempt: Int? = nil, host: String? = nil, state: String, message: String = "") {
        self.time = time
        self.job = job
        self.attempt = attempt
        self.host = host
        self.state = state
        self.message = message
    }
}

/// Estimates the time left from the runtimes of the jobs done so far: mean runtime × remaining jobs / parallelism (parallelism = max(1, busy or total slots)); nil before any job finished.
public enum ProgressEstimate {
    /// Seconds left: mean of `finishedRuntimes` × `remaining` / max(1, `parallelism`); nil when `finishedRuntimes` is empty.
    public static func eta(finishedRuntimes: [Double], remaining: Int, parallelism: Int) -> Double? {
        guard !finishedRuntimes.isEmpty else { return nil }
        let mean = finishedRuntimes.reduce(0, +) / Double(finishedRuntimes.count)
        return mean * Double(max(0, remaining)) / Double(max(1, parallelism))
    }
}

/// Turns progress snapshots and job state changes into text for a terminal, a log, or a program.
///
/// Every method returns text to write as is; "" when the mode has nothing to show.
public struct ProgressRenderer: Sendable {
    /// Where the text goes.
    public enum Mode: Sendable, Equatable {
        /// A live display redrawn in place, never wider than `width` columns.
        case terminal(width: Int, color: Bool)
        /// One line per job state change, for logs.
        case lines(color: Bool)
        /// One JSON object per line, for programs.
        case json
    }

    /// The output kind.
    let mode: Mode
    /// Lines of the frame on screen; 0 when none is (and the cursor is visible).
    private var drawnLines = 0

    /// Creates a renderer for `mode`.
    public init(mode: Mode) {
        self.mode = mode
    }

    /// Terminal mode: the text that replaces the previous frame in place (hides the cursor on the first frame, then moves up over the lines drawn last time; the cursor stays at the end of the last line); lines never wider than `width`. Other modes: "".
    public mutating func frame(_ p: BatchProgress) -> String {
        guard case .terminal(let requested, _) = mode else { return "" }
        let width = max(1, requested)
        let lines = (header(p, width: width) + hostLines(p.hosts, width: width)).map { render($0, width: width) }
        var out = drawnLines == 0 ? "\u{1B}[?25l" : drawnLines > 1 ? "\u{1B}[\(drawnLines - 1)A" : ""
        out += lines.map { "\r\u{1B}[2K" + $0 }.joined(separator: "\n")
        if lines.count < drawnLines { out += "\u{1B}[J" }
        drawnLines = lines.count
        return out
    }

    /// Lines mode: one line per change, e.g. "14:03:07 chunk-03 succeeded on h2 (attempt 1) — 3/12 done, 1 running, 1 failed"; json mode: one `{"type":"job",…}` object per line; terminal mode: "".
    public mutating func change(_ c: ProgressChange, _ p: BatchProgress) -> String {
        switch mode {
        case .terminal:
            return ""
        case .lines:
            var text = ""
            if let host = c.host { text += " on \(host)" }
            if let attempt = c.attempt { text += " (attempt \(attempt))" }
            if !c.message.isEmpty { text += ": \(c.message)" }
            text += " — \(p.done)/\(p.total) done, \(p.running) running"
            if p.starting > 0 { text += ", \(p.starting) starting" }
            if p.failed > 0 { text += ", \(p.failed) failed" }
            let spans = [
                Span(Format.clock(c.time), Style.dim), Span(" \(Format.printable(c.job)) "),
                Span(Format.printable(c.state), Style.job[c.state]), Span(Format.printable(text)),
            ]
            return render(spans) + "\n"
        case .json:
            let object = JSON.object([
                ("type", .string("job")), ("time", .number(c.time)), ("batch", .string(p.batch)),
                ("job", .string(c.job)), ("attempt", .int(c.attempt)), ("host", .string(c.host)),
                ("state", .string(c.state)), ("message", .string(c.message)),
                ("done", .int(p.done)), ("total", .int(p.total)),
            ])
            return object.text + "\n"
        }
    }

    /// Json mode: one `{"type":"progress",…}` line with the counts and hosts; lines mode: a one-line summary; terminal mode: "".
    public func snapshot(_ p: BatchProgress) -> String {
        switch mode {
        case .terminal:
            return ""
        case .lines:
            var spans = [Span(Format.printable(
                "batch \(p.batch): \(p.done)/\(p.total) done (\(p.succeeded) succeeded, \(p.failed) failed, "
                    + "\(p.skipped) skipped, \(p.cancelled) cancelled), \(p.running) running, "
                    + (p.starting > 0 ? "\(p.starting) starting, " : "") + "\(p.queued) queued, "
                    + "\(p.waiting) waiting, \(Format.duration(p.elapsed)) elapsed, ETA \(Format.duration(p.eta))"
            ))]
            for (i, host) in p.hosts.enumerated() {
                spans += [
                    Span((i == 0 ? "; hosts: " : ", ") + Format.printable(host.name) + " "),
                    Span(Format.printable(host.state), Style.host[host.state]),
                    Span(" \(host.usedSlots)/\(host.slots.map(String.init) ?? "?")"),
                ]
            }
            return render(spans) + "\n"
        case .json:
            let hosts = p.hosts.map { h in
                JSON.object([
                    ("name", .string(h.name)), ("state", .string(h.state)), ("used_slots", .int(h.usedSlots)),
                    ("slots", .int(h.slots)), ("heartbeat_age", .number(h.heartbeatAge)),
                ])
            }
            let object = JSON.object([
                ("type", .string("progress")), ("batch", .string(p.batch)), ("total", .int(p.total)),
                ("succeeded", .int(p.succeeded)), ("failed", .int(p.failed)), ("skipped", .int(p.skipped)),
                ("cancelled", .int(p.cancelled)), ("running", .int(p.running)), ("starting", .int(p.starting)), ("queued", .int(p.queued)),
                ("waiting", .int(p.waiting)), ("elapsed", .number(p.elapsed)), ("eta", .number(p.eta)),
                ("hosts", .array(hosts)),
            ])
            return object.text + "\n"
        }
    }

    /// Terminal mode: leaves the last frame on screen, shows the cursor again (`\u{1B}[?25h`) and ends with a newline; what a Ctrl-C handler prints too. "" when no frame is on screen, and in other modes.
    public mutating func finish() -> String {
        guard case .terminal = mode, drawnLines > 0 else { return "" }
        drawnLines = 0
        return "\u{1B}[?25h\n"
    }

    // MARK: - Terminal layout

    /// "batch NAME  [███░░]  7/12" then the counters, on as few lines as `width` allows; the bar takes the room left.
    private func header(_ p: BatchProgress, width: Int) -> [[Span]] {
        let head = "batch \(Format.printable(p.batch))", count = "\(p.done)/\(p.total)"
        let fields = [
            Span("running \(p.running)"),
        ] + (p.starting > 0 ? [Span("starting \(p.starting)")] : []) + [
            Span("queued \(p.queued)"), Span("waiting \(p.waiting)"),
            Span("failed \(p.failed)", p.failed > 0 ? Style.red : nil), Span("skipped \(p.skipped)"),
        ] + (p.cancelled > 0 ? [Span("cancelled \(p.cancelled)")] : []) + [
            Span("\(Format.duration(p.elapsed)) elapsed"), Span("ETA \(Format.duration(p.eta))"),
        ]
        let fixed = head.count + 6 + count.count  // head + "  [" + bar + "]  " + count
        let oneLineRoom = width - fixed - fields.reduce(0) { $0 + 2 + $1.text.count }
        let barLength = min(30, oneLineRoom >= 10 ? oneLineRoom : width - fixed)
        var first = [Span(head, Style.bold), Span("  ")]
        if barLength >= 4 {
            let filled = p.total > 0 ? min(barLength, max(0, p.done) * barLength / p.total) : 0
            first += [
                Span("["), Span(String(repeating: "█", count: filled), Style.green),
                Span(String(repeating: "░", count: barLength - filled)), Span("]  "),
            ]
        }
        var lines = [first + [Span(count)]]
        for field in fields {
            if columns(lines[lines.count - 1]) + 2 + field.text.count <= width {
                lines[lines.count - 1] += [Span("  "), field]
            } else {
                lines.append([Span("  "), field])
            }
        }
        return lines
    }

    /// "  h1  up    ▮▮▯▯ 2/4 slots  heartbeat 0.4s", names (cut to a quarter of `width`) and states in aligned columns.
    private func hostLines(_ hosts: [HostProgress], width: Int) -> [[Span]] {
        let nameWidth = min(24, max(8, width / 4), hosts.map { Format.printable($0.name).count }.max() ?? 0)
        let stateWidth = hosts.map { Format.printable($0.state).count }.max() ?? 0
        return hosts.map { h in
            let state = Format.printable(h.state)
            var line = [
                Span("  " + Format.pad(Format.printable(h.name), nameWidth) + "  "),
                Span(state, Style.host[h.state]), Span(String(repeating: " ", count: stateWidth - state.count) + "  "),
            ]
            if let slots = h.slots, (0...16).contains(slots) {
                let used = min(max(0, h.usedSlots), slots)
                line.append(Span(String(repeating: "▮", count: used) + String(repeating: "▯", count: slots - used) + " "))
            }
            let age = h.heartbeatAge.map { Format.decimal($0, places: 1) + "s" } ?? "—"
            line.append(Span("\(h.usedSlots)/\(h.slots.map(String.init) ?? "?") slots  heartbeat \(age)"))
            return line
        }
    }

    private func columns(_ spans: [Span]) -> Int {
        spans.reduce(0) { $0 + $1.text.count }
    }

    /// `spans` as text, cut to `width` columns ending in "…", coloured when the mode says so.
    private func render(_ spans: [Span], width: Int = .max) -> String {
        let color: Bool
        switch mode {
        case .terminal(_, let c), .lines(let c): color = c
        case .json: color = false
        }
        let cut = columns(spans) > width
        var room = cut ? width - 1 : width
        var out = ""
        for span in spans where room > 0 {
            let text = String(span.text.prefix(room))
            room -= text.count
            if color, let sgr = span.sgr, !text.isEmpty {
                out += "\u{1B}[\(sgr)m\(text)\u{1B}[0m"
            } else {
                out += text
            }
        }
        return cut ? out + "…" : out
    }
}

/// A piece of a line, with its SGR colour code when coloured.
private struct Span {
    var text: String
    var sgr: String?

    init(_ text: String, _ sgr: String? = nil) {
        self.text = text
        self.sgr = sgr
    }
}

/// SGR codes, and the colours of host and job states.
private enum Style {
    static let bold = "1", dim = "2", red = "31", green = "32", yellow = "33"
    static let host = ["up": green, "suspect": yellow, "down": red, "connecting": dim, "reconciling": dim]
    static let job = ["succeeded": green, "failed": red, "cancelled": yellow, "skipped": yellow]
}

/// Text forms of times, durations and numbers.
private enum Format {
    /// Local wall-clock time "HH:MM:SS" of unix seconds.
    static func clock(_ unix: Double) -> String {
        guard let seconds = Int(exactly: unix.rounded(.down)) else { return "--:--:--" }
        var time = time_t(seconds), parts = tm()
        localtime_r(&time, &parts)
        return "\(two(Int(parts.tm_hour))):\(two(Int(parts.tm_min))):\(two(Int(parts.tm_sec)))"
    }

    /// "mm:ss", or "h:mm:ss" from an hour on; "--:--" when unknown.
    static func duration(_ seconds: Double?) -> String {
        guard let seconds, let s = Int(exactly: max(0, seconds).rounded()) else { return "--:--" }
        let (h, m) = (s / 3600, s / 60 % 60)
        return h > 0 ? "\(h):\(two(m)):\(two(s % 60))" : "\(two(m)):\(two(s % 60))"
    }

    /// `x` rounded to `places` decimals, without trailing zeros or an exponent.
    static func decimal(_ x: Double, places: Int) -> String {
        let scale = (0..<places).reduce(1) { n, _ in n * 10 }
        guard let n = Int(exactly: (abs(x) * Double(scale)).rounded()), n < 1 << 53 else { return "\(x)" }
        var text = String(n / scale)
        if n % scale > 0 {
            var fraction = String(n % scale)
            fraction = String(repeating: "0", count: places - fraction.count) + fraction
            while fraction.hasSuffix("0") { fraction.removeLast() }
            text += "." + fraction
        }
        return (x < 0 && n > 0 ? "-" : "") + text
    }

    /// `text` with control characters (escape sequences, newlines) turned into spaces.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
    }

    /// `text` padded with spaces to `width`, or cut to it ending in "…".
    static func pad(_ text: String, _ width: Int) -> String {
        text.count > width ? text.prefix(width - 1) + "…" : text + String(repeating: " ", count: width - text.count)
    }

    private static func two(_ n: Int) -> String {
        n < 10 ? "0\(n)" : "\(n)"
    }
}

/// A JSON value written on one line.
private enum JSON {
    case string(String?), int(Int?), number(Double?), array([JSON]), object([(String, JSON)])

    var text: String {
        switch self {
        case .string(let s): s.map(JSONText.quote) ?? "null"
        case .int(let n): n.map(String.init) ?? "null"
        case .number(let x): x.flatMap { $0.isFinite ? Format.decimal($0, places: 3) : nil } ?? "null"
        case .array(let items): "[" + items.map(\.text).joined(separator: ",") + "]"
        case .object(let members): "{" + members.map { JSONText.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        }
    }
}
