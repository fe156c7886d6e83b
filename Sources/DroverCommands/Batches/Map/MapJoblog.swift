import DroverCoordinator
import DroverCore
import Foundation

/// GNU parallel's joblog for `drover map`: read for `--resume`, `--resume-failed` and
/// `--retry-failed`, written (or appended to) at the end, with the job number as `Seq`.
struct MapJoblog {
    struct Row {
        var seq: Int
        var exitval: Int
        var signal: Int
        var command: String
    }

    var rows: [Row]

    static let header = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"

    /// The joblog of an earlier run, when a resume reads one (nil otherwise or when there is none yet).
    static func previous(_ o: MapOptions) throws -> MapJoblog? {
        guard o.resume || o.resumeFailed || o.retryFailed, let path = o.joblog, LocalFile.exists(path) else { return nil }
        guard let bytes = try? LocalFile.read(path) else {
            Terminal.error("--joblog \(path): cannot read it")
            throw MapInputList.Problem(message: "--joblog \(path): cannot read it")
        }
        var rows: [Row] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n").dropFirst() {
            let f = line.split(separator: "\t", maxSplits: 8, omittingEmptySubsequences: false)
            guard f.count == 9, let seq = Int(f[0]), let exitval = Int(f[6]), let signal = Int(f[7]) else { continue }
            rows.append(Row(seq: seq, exitval: exitval, signal: signal, command: String(f[8])))
        }
        return MapJoblog(rows: rows)
    }

    /// Whether job `seq` is left out: `--resume` leaves out every job in the log, `--resume-failed`
    /// only those that succeeded (its last line counts).
    func skips(_ seq: Int, resumeFailed: Bool) -> Bool {
        guard let last = rows.last(where: { $0.seq == seq }) else { return false }
        return !resumeFailed || (last.exitval == 0 && last.signal == 0)
    }

    /// The jobs whose last line says they failed.
    var failed: [Row] {
        var last: [Int: Row] = [:]
        for r in rows { last[r.seq] = r }
        return last.values.filter { $0.exitval != 0 || $0.signal != 0 }.sorted { $0.seq < $1.seq }
    }

    /// Writes the lines of the jobs that ran, in the order they ended; appends when `append` (a resume).
    static func write(_ report: BatchReport, to path: String, append: Bool) {
        var lines: [(end: Double, text: String)] = []
        for j in report.jobs {
            guard let a = j.attempts.last(where: { !$0.stale }) ?? j.attempts.last, let start = a.startedAt else { continue }
            let runtime = (a.endedAt ?? report.generatedAt) - start
            let signal = a.signal.flatMap(Signals.number).map(Int.init) ?? 0
            let received = LocalFile.size(report.batch.folder + "/" + (j.record.batchJob ?? "") + "/stdout") ?? 0
            let exitval = a.exitCode ?? -1
            lines.append((a.endedAt ?? report.generatedAt, [j.record.batchJob ?? "", a.host, String(format: "%.3f", start), String(format: "%.3f", runtime), "0",
                                                             String(received), String(exitval), String(signal),
                                                             j.record.request.commandLine.replacingOccurrences(of: "\n", with: " ")].joined(separator: "\t")))
        }
        let body = lines.sorted { $0.end < $1.end }.map { $0.text + "\n" }.joined()
        let existing = append ? (try? LocalFile.read(path)) ?? [] : []
        let text = existing.isEmpty ? header + "\n" + body : String(decoding: existing, as: UTF8.self) + body
        do { try AtomicFile.write(Array(text.utf8), to: path, mode: 0o644) } catch {
            Terminal.error("cannot write the joblog \(path): \(error)")
        }
    }
}
