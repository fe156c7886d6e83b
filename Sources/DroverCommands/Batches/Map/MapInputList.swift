import DroverCore
import Foundation

/// The values of every job of a map, from its input sources as GNU parallel combines them:
/// `:::`/`::::`/`-a`/stdin, `-0`, `--colsep`, `--header :`, `--link`/`:::+`, `-N`.
struct MapInputList {
    /// Each job's values, in job order (`{1}`, `{2}`, … of job N are `jobs[N-1]`).
    var jobs: [[String]]
    /// Column names from `--header`, by position (`{name}` is `{position+1}`).
    var headers: [String] = []

    /// Why the inputs cannot be read.
    struct Problem: Error {
        var message: String
    }

    /// Reads every source (files, stdin) and combines them.
    static func read(_ sources: [MapArguments.Source], linked: [Bool], options o: MapOptions, readStdin: () throws(Problem) -> [UInt8]) throws(Problem) -> MapInputList {
        var lists: [[String]] = []
        var links: [Bool] = []
        for path in o.argFiles {
            lists.append(try values(of: try file(path, flag: "-a"), o))
            links.append(o.link && !lists.isEmpty && lists.count > 1)
        }
        for (s, link) in zip(sources, linked) {
            switch s {
            case .values(let v): lists.append(v)
            case .file(let path): lists.append(try values(of: try file(path, flag: "::::"), o))
            }
            links.append(link || (o.link && !lists.isEmpty && lists.count > 1))
        }
        if lists.isEmpty {
            lists.append(values(of: try readStdin(), o))
            links.append(false)
        }
        // Each source becomes rows of columns (one column unless --colsep splits it).
        var rows: [[[String]]] = []
        var headers: [String] = []
        for list in lists {
            var r = try list.map { v throws(Problem) in try columns(v, colsep: o.colsep) }
            if o.header != nil {
                guard !r.isEmpty else { throw Problem(message: "--header: an input source is empty, it has no header line") }
                headers += r.removeFirst()
            }
            rows.append(r)
        }
        // Linked sources pair their rows (the shorter ones wrap around, as parallel does); the groups combine.
        var groups: [[[String]]] = []
        for (i, r) in rows.enumerated() {
            if links[i], let last = groups.popLast() {
                let n = max(last.count, r.count)
                groups.append(n == 0 || last.isEmpty || r.isEmpty ? [] : (0..<n).map { last[$0 % last.count] + r[$0 % r.count] })
            } else {
                groups.append(r)
            }
        }
        var combos = groups.reduce([[String]]([[]])) { combos, group in combos.flatMap { c in group.map { c + $0 } } }
        if o.maxArgs == 0 {
            // parallel's -N0: one job per input, which it does not see.
            combos = combos.map { _ in [] }
        } else if let n = o.maxArgs, n > 0 {
            combos = stride(from: 0, to: combos.count, by: n).map { Array(combos[$0..<min($0 + n, combos.count)].joined()) }
        }
        return MapInputList(jobs: combos, headers: headers)
    }

    /// The template with `{name}` (a `--header` column) written as `{N}`, and `-I`'s string as `{}`.
    func renaming(_ words: [String], replace: String? = nil) -> [String] {
        return words.map { word in
            var w = word
            if let replace, !replace.isEmpty { w = w.replacing(replace, with: "{}") }
            for (i, name) in headers.enumerated() {
                for part in ["", ".", "/", "//", "/."] { w = w.replacing("{\(name)\(part)}", with: "{\(i + 1)\(part)}") }
            }
            return w
        }
    }

    private static func file(_ path: String, flag: String) throws(Problem) -> [UInt8] {
        if path == "-" { return Array(FileHandle.standardInput.readDataToEndOfFile()) }
        do { return try LocalFile.read(path) } catch { throw Problem(message: "\(flag) \(path): cannot read the file (\(error))") }
    }

    /// Values of a file or stdin: lines (see `MapInputs.lines`), or NUL-separated with `-0`,
    /// or separated by `-d`'s delimiter.
    static func values(of bytes: [UInt8], _ o: MapOptions) -> [String] {
        let delimiter = o.null ? "\0" : o.delimiter
        guard let delimiter, !delimiter.isEmpty else { return MapInputs.lines(String(decoding: bytes, as: UTF8.self)) }
        var parts = String(decoding: bytes, as: UTF8.self).components(separatedBy: delimiter)
        if parts.last?.isEmpty == true { parts.removeLast() }
        return parts
    }

    /// A value split at every match of the `--colsep` regular expression.
    private static func columns(_ value: String, colsep: String?) throws(Problem) -> [String] {
        guard let colsep else { return [value] }
        let regex: NSRegularExpression
        do { regex = try NSRegularExpression(pattern: colsep) } catch {
            throw Problem(message: "--colsep \(colsep): not a regular expression")
        }
        let ns = value as NSString
        var out: [String] = []
        var start = 0
        for m in regex.matches(in: value, range: NSRange(location: 0, length: ns.length)) where m.range.length > 0 {
            out.append(ns.substring(with: NSRange(location: start, length: m.range.location - start)))
            start = m.range.location + m.range.length
        }
        out.append(ns.substring(from: start))
        return out
    }
}
