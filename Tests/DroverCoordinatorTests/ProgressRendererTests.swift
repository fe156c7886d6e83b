import Foundation
import Testing
@testable import DroverCoordinator

/// A 4-job batch on 2 hosts: chunk-04 waits for chunk-03; h2 goes down, so chunk-03 fails and chunk-04 is skipped.
private enum Script {
    static let start = 1_700_000_000.0

    static func hosts(h1Used: Int, h2Used: Int, h2Down: Bool = false) -> [HostProgress] {
        [
            HostProgress(name: "h1", state: "up", usedSlots: h1Used, slots: 2, heartbeatAge: 0.4),
            HostProgress(name: "h2", state: h2Down ? "down" : "up", usedSlots: h2Used, slots: 2, heartbeatAge: h2Down ? 9.5 : 0.3),
        ]
    }

    static let queued = BatchProgress(batch: "demo", total: 4, queued: 3, waiting: 1, hosts: hosts(h1Used: 0, h2Used: 0))

    /// Each change with the snapshot right after it.
    static let steps: [(ProgressChange, BatchProgress)] = [
        (
            ProgressChange(time: start + 1, job: "chunk-01", attempt: 1, host: "h1", state: "running"),
            BatchProgress(batch: "demo", total: 4, running: 1, queued: 2, waiting: 1, elapsed: 1, hosts: hosts(h1Used: 1, h2Used: 0))
        ),
        (
            ProgressChange(time: start + 1, job: "chunk-02", attempt: 1, host: "h1", state: "running"),
            BatchProgress(batch: "demo", total: 4, running: 2, queued: 1, waiting: 1, elapsed: 1, hosts: hosts(h1Used: 2, h2Used: 0))
        ),
        (
            ProgressChange(time: start + 2, job: "chunk-03", attempt: 1, host: "h2", state: "running"),
            BatchProgress(batch: "demo", total: 4, running: 3, waiting: 1, elapsed: 2, hosts: hosts(h1Used: 2, h2Used: 1))
        ),
        (
            ProgressChange(time: start + 11, job: "chunk-01", attempt: 1, host: "h1", state: "succeeded"),
            BatchProgress(
                batch: "demo", total: 4, succeeded: 1, running: 2, waiting: 1, elapsed: 11,
                eta: ProgressEstimate.eta(finishedRuntimes: [10], remaining: 3, parallelism: 3), hosts: hosts(h1Used: 1, h2Used: 1)
            )
        ),
        (
            ProgressChange(time: start + 20, job: "chunk-03", attempt: 1, host: "h2", state: "failed", message: "host h2 went down"),
            BatchProgress(
                batch: "demo", total: 4, succeeded: 1, failed: 1, running: 1, waiting: 1, elapsed: 20,
                eta: ProgressEstimate.eta(finishedRuntimes: [10, 18], remaining: 2, parallelism: 2),
                hosts: hosts(h1Used: 1, h2Used: 0, h2Down: true)
            )
        ),
        (
            ProgressChange(time: start + 20, job: "chunk-04", state: "skipped", message: "dependency chunk-03 failed"),
            BatchProgress(
                batch: "demo", total: 4, succeeded: 1, failed: 1, skipped: 1, running: 1, elapsed: 20,
                eta: ProgressEstimate.eta(finishedRuntimes: [10, 18], remaining: 1, parallelism: 1),
                hosts: hosts(h1Used: 1, h2Used: 0, h2Down: true)
            )
        ),
        (
            ProgressChange(time: start + 25, job: "chunk-02", attempt: 1, host: "h1", state: "succeeded"),
            BatchProgress(
                batch: "demo", total: 4, succeeded: 2, failed: 1, skipped: 1, elapsed: 25,
                eta: ProgressEstimate.eta(finishedRuntimes: [10, 18, 24], remaining: 0, parallelism: 1),
                hosts: hosts(h1Used: 0, h2Used: 0, h2Down: true)
            )
        ),
    ]

    static let snapshots = [queued] + steps.map(\.1)
}

private let esc = "\u{1B}"

/// The lines of a terminal frame as they show on screen: no cursor, clear or colour sequences.
private func screenLines(_ frame: String) -> [String] {
    frame.replacing(/\x{1B}\[[0-9;?]*[A-Za-z]/, with: "").replacing("\r", with: "").components(separatedBy: "\n")
}

/// `text` without the cursor movement, clear, hide and show sequences terminal mode may use with colour off.
private func withoutCursorControl(_ text: String) -> String {
    text.replacing(/\x{1B}\[(\?25[lh]|[0-9]+A|2K|J)/, with: "")
}

/// Local "HH:mm:ss" of unix seconds, computed independently of the renderer.
private func localClock(_ unix: Double) -> String {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = .current
    formatter.dateFormat = "HH:mm:ss"
    return formatter.string(from: Date(timeIntervalSince1970: unix))
}

private func parse(_ line: String) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
}

@Suite("Progress renderer")
struct ProgressRendererTests {
    @Test func terminalFramesRedrawInPlace() {
        var renderer = ProgressRenderer(mode: .terminal(width: 120, color: false))
        let first = renderer.frame(Script.queued)
        #expect(first == """
            \(esc)[?25l\r\(esc)[2Kbatch demo  [░░░░░░░░░░░░░░░░░░░░░░]  0/4  running 0  queued 3  waiting 1  failed 0  skipped 0  00:00 elapsed  ETA --:--
            \r\(esc)[2K  h1  up  ▯▯ 0/2 slots  heartbeat 0.4s
            \r\(esc)[2K  h2  up  ▯▯ 0/2 slots  heartbeat 0.3s
            """)

        // The cursor sits on the last of the 3 lines: up 2 reaches the first; each of the 3 lines is cleared.
        let second = renderer.frame(Script.steps[0].1)
        #expect(second.hasPrefix("\(esc)[2A\r\(esc)[2K"))
        #expect(second.components(separatedBy: "\(esc)[2K").count - 1 == 3)
        #expect(!second.contains("\(esc)[?25l"))

        var last = ""
        for p in Script.snapshots.dropFirst(2) { last = renderer.frame(p) }
        #expect(last == """
            \(esc)[2A\r\(esc)[2Kbatch demo  [██████████████████████]  4/4  running 0  queued 0  waiting 0  failed 1  skipped 1  00:25 elapsed  ETA 00:00
            \r\(esc)[2K  h1  up    ▯▯ 0/2 slots  heartbeat 0.4s
            \r\(esc)[2K  h2  down  ▯▯ 0/2 slots  heartbeat 9.5s
            """)

        // A shorter frame clears what is left of the longer one below it.
        var shrinking = Script.snapshots.last!
        shrinking.hosts = []
        #expect(renderer.frame(shrinking).hasSuffix("ETA 00:00\(esc)[J"))
    }

    @Test(arguments: [40, 120])
    func terminalLinesFitTheWidth(width: Int) {
        for color in [false, true] {
            var renderer = ProgressRenderer(mode: .terminal(width: width, color: color))
            var long = Script.snapshots[5]
            long.batch = "nightly-reindex-of-every-customer-shard"
            long.hosts.append(HostProgress(name: "build-runner-07.eu-west.example.com", state: "reconciling", usedSlots: 3, slots: 8))
            for p in Script.snapshots + [long] {
                for line in screenLines(renderer.frame(p)) {
                    #expect(line.count <= width, "\(line.count) columns: \(line)")
                }
            }
        }
    }

    @Test func narrowFrameWrapsCountersAndCutsHostLines() {
        var renderer = ProgressRenderer(mode: .terminal(width: 40, color: false))
        var p = Script.snapshots[5]
        p.hosts.append(HostProgress(name: "build-runner-07.eu-west.example.com", state: "reconciling", usedSlots: 3, slots: 8))
        #expect(screenLines(renderer.frame(p)) == [
            "batch demo  [██████████░░░░░░░░░░░]  2/4",
            "  running 1  queued 0  waiting 1",
            "  failed 1  skipped 0  00:20 elapsed",
            "  ETA 00:14",
            "  h1          up           ▮▯ 1/2 slots…",
            "  h2          down         ▯▯ 0/2 slots…",
            "  build-run…  reconciling  ▮▮▮▯▯▯▯▯ 3/8…",
        ])
    }

    @Test func colourOnlyWhenAskedFor() {
        var plain = ProgressRenderer(mode: .terminal(width: 120, color: false))
        var coloured = ProgressRenderer(mode: .terminal(width: 120, color: true))
        var sawDown = false
        for p in Script.snapshots {
            #expect(!withoutCursorControl(plain.frame(p)).contains(esc))
            let frame = coloured.frame(p)
            #expect(frame.contains("\(esc)[32mup\(esc)[0m"))
            if p.hosts.contains(where: { $0.state == "down" }) {
                #expect(frame.contains("\(esc)[31mdown\(esc)[0m"))
                sawDown = true
            }
            #expect(frame.contains("\(esc)[31mfailed 1\(esc)[0m") == (p.failed > 0))
        }
        #expect(sawDown)
    }

    @Test func linesModeWritesOneLinePerChange() {
        var renderer = ProgressRenderer(mode: .lines(color: false))
        #expect(renderer.frame(Script.queued) == "")
        let output = Script.steps.map { renderer.change($0.0, $0.1) }.joined()
        let at = { (offset: Double) in localClock(Script.start + offset) }
        #expect(output == """
            \(at(1)) chunk-01 running on h1 (attempt 1) — 0/4 done, 1 running
            \(at(1)) chunk-02 running on h1 (attempt 1) — 0/4 done, 2 running
            \(at(2)) chunk-03 running on h2 (attempt 1) — 0/4 done, 3 running
            \(at(11)) chunk-01 succeeded on h1 (attempt 1) — 1/4 done, 2 running
            \(at(20)) chunk-03 failed on h2 (attempt 1): host h2 went down — 2/4 done, 1 running, 1 failed
            \(at(20)) chunk-04 skipped: dependency chunk-03 failed — 3/4 done, 1 running, 1 failed
            \(at(25)) chunk-02 succeeded on h1 (attempt 1) — 4/4 done, 0 running, 1 failed

            """)
        #expect(!output.contains(esc))
        #expect(renderer.snapshot(Script.snapshots[5]) == "batch demo: 2/4 done (1 succeeded, 1 failed, 0 skipped, 0 cancelled), "
            + "1 running, 0 queued, 1 waiting, 00:20 elapsed, ETA 00:14; hosts: h1 up 1/2, h2 down 0/2\n")
        #expect(renderer.finish() == "")
    }

    @Test func linesModeColoursStatesAndKeepsEachChangeOnOneLine() {
        var renderer = ProgressRenderer(mode: .lines(color: true))
        let (failure, p) = Script.steps[4]
        #expect(renderer.change(failure, p).contains("\(esc)[31mfailed\(esc)[0m on h2"))
        let hostile = ProgressChange(time: Script.start, job: "j\(esc)[2J", state: "failed", message: "line 1\nline 2")
        var plain = ProgressRenderer(mode: .lines(color: false))
        let line = plain.change(hostile, p)
        #expect(line.hasSuffix("j [2J failed: line 1 line 2 — 2/4 done, 1 running, 1 failed\n"))
        #expect(line.filter { $0 == "\n" }.count == 1)
    }

    @Test func jsonModeWritesOneObjectPerLine() throws {
        var renderer = ProgressRenderer(mode: .json)
        #expect(renderer.frame(Script.queued) == "")
        for (change, p) in Script.steps {
            let line = renderer.change(change, p)
            #expect(line.hasSuffix("\n") && line.dropLast().allSatisfy { $0 != "\n" })
            let object = try parse(line)
            #expect(object["type"] as? String == "job")
            #expect(object["time"] as? Double == change.time)
            #expect(object["batch"] as? String == "demo")
            #expect(object["job"] as? String == change.job)
            #expect(object["attempt"] as? Int == change.attempt)
            #expect(object["host"] as? String == change.host)
            #expect(object["state"] as? String == change.state)
            #expect(object["message"] as? String == change.message)
            #expect(object["done"] as? Int == p.done)
            #expect(object["total"] as? Int == 4)
        }
        let skipped = try parse(renderer.change(Script.steps[5].0, Script.steps[5].1))
        #expect(skipped["host"] is NSNull && skipped["attempt"] is NSNull)

        let line = renderer.snapshot(Script.snapshots[5])
        #expect(line == #"{"type":"progress","batch":"demo","total":4,"succeeded":1,"failed":1,"skipped":0,"cancelled":0,"#
            + #""running":1,"starting":0,"queued":0,"waiting":1,"elapsed":20,"eta":14,"hosts":["#
            + #"{"name":"h1","state":"up","used_slots":1,"slots":2,"heartbeat_age":0.4},"#
            + #"{"name":"h2","state":"down","used_slots":0,"slots":2,"heartbeat_age":9.5}]}"# + "\n")
        let hosts = try #require(try parse(line)["hosts"] as? [[String: Any]])
        #expect(hosts.map { $0["state"] as? String } == ["up", "down"])
        #expect(try parse(renderer.snapshot(Script.queued))["eta"] is NSNull)
    }

    @Test func jsonEscapesStringsAndWritesPlainNumbers() throws {
        let renderer = ProgressRenderer(mode: .json)
        let name = "say \"hi\" \\ tab\t nl\n bell\u{07} é"
        var p = BatchProgress(batch: name, total: 1, elapsed: 12.345_67, eta: 0.000_1)
        p.hosts = [HostProgress(name: "h", state: "up", heartbeatAge: 1_234_567.891_2)]
        let line = renderer.snapshot(p)
        #expect(line.contains(#""elapsed":12.346,"eta":0,"#))
        #expect(line.contains(#""heartbeat_age":1234567.891}"#))
        #expect(line.contains(#""slots":null"#))
        #expect(line.contains(#"\u0007"#))
        #expect(try parse(line)["batch"] as? String == name)
    }

    @Test func finishRestoresTheCursor() {
        var renderer = ProgressRenderer(mode: .terminal(width: 80, color: true))
        #expect(renderer.finish() == "")
        _ = renderer.frame(Script.queued)
        #expect(renderer.finish() == "\(esc)[?25h\n")
        #expect(renderer.finish() == "")
        #expect(renderer.frame(Script.queued).hasPrefix("\(esc)[?25l"))
        #expect(renderer.change(Script.steps[0].0, Script.steps[0].1) == "")
        #expect(renderer.snapshot(Script.queued) == "")
    }

    @Test func etaIsMeanRuntimeTimesRemainingOverParallelism() {
        #expect(ProgressEstimate.eta(finishedRuntimes: [], remaining: 4, parallelism: 2) == nil)
        #expect(ProgressEstimate.eta(finishedRuntimes: [10], remaining: 3, parallelism: 3) == 10)
        #expect(ProgressEstimate.eta(finishedRuntimes: [10, 20], remaining: 3, parallelism: 2) == 22.5)
        #expect(ProgressEstimate.eta(finishedRuntimes: [10, 20], remaining: 3, parallelism: 0) == 45)
        #expect(ProgressEstimate.eta(finishedRuntimes: [10, 20], remaining: 0, parallelism: 2) == 0)
    }
}
