import DroverCore

/// The dependency graph of a batch: checks it and orders it.
public enum BatchGraph {
    /// Every duplicate id, unknown dependency and cycle, each with its path in the file.
    public static func problems(_ jobs: [BatchJob]) -> [(path: String, message: String)] {
        var out: [(String, String)] = []
        var first: [String: String] = [:]
        for j in jobs {
            if let earlier = first[j.id] {
                out.append(("\(j.path).id", "duplicate job id \"\(j.id)\" (first used by \(earlier)); ids must be unique in a batch"))
            } else {
                first[j.id] = j.path
            }
        }
        let ids = Array(first.keys)
        for j in jobs {
            for (i, d) in j.dependencies.enumerated() {
                let path = "\(j.path).after[\(i)]"
                if d.job == j.id {
                    out.append((path, "job \"\(j.id)\" cannot depend on itself"))
                } else if first[d.job] == nil {
                    let hint = Suggestion.nearest(to: d.job, among: ids).map { "; did you mean \"\($0)\"?" } ?? ""
                    out.append((path, "unknown job id \"\(d.job)\"\(hint)"))
                }
            }
        }
        if let cycle = findCycle(jobs) {
            let names = cycle.map { "\($0.id) (\($0.path))" }
            out.append(("\(cycle[0].path).after", "dependency cycle: \(names.joined(separator: " → ")) → \(cycle[0].id)"))
        }
        return out
    }

    /// Jobs ordered so that each comes after its dependencies; file order among independent jobs.
    public static func order(_ jobs: [BatchJob]) throws(BatchGraphError) -> [BatchJob] {
        var index: [String: Int] = [:]
        for (i, j) in jobs.enumerated() where index[j.id] == nil { index[j.id] = i }
        var pending = jobs.map { Set($0.dependencies.compactMap { index[$0.job] }) }
        var dependents = [[Int]](repeating: [], count: jobs.count)
        for (i, deps) in pending.enumerated() { for d in deps { dependents[d].append(i) } }
        // Kahn's algorithm, always taking the earliest ready job in the file.
        var ready = MinHeap<Int>()
        for i in jobs.indices where pending[i].isEmpty { ready.push(i) }
        var out: [BatchJob] = []
        while let i = ready.pop() {
            out.append(jobs[i])
            for d in dependents[i] {
                pending[d].remove(i)
                if pending[d].isEmpty { ready.push(d) }
            }
        }
        guard out.count == jobs.count else { throw BatchGraphError(message: "the batch has a dependency cycle") }
        return out
    }

    /// One cycle, as the jobs along it, when there is one.
    static func findCycle(_ jobs: [BatchJob]) -> [BatchJob]? {
        var index: [String: Int] = [:]
        for (i, j) in jobs.enumerated() where index[j.id] == nil { index[j.id] = i }
        var color = [UInt8](repeating: 0, count: jobs.count)  // 0 new, 1 on the stack, 2 done
        var stack: [Int] = []
        // Iterative depth-first search: (job, next dependency to look at).
        for start in jobs.indices where color[start] == 0 {
            var work: [(Int, Int)] = [(start, 0)]
            color[start] = 1
            stack.append(start)
            while let (node, next) = work.last {
                let deps = jobs[node].dependencies
                if next < deps.count {
                    work[work.count - 1].1 += 1
                    guard let d = index[deps[next].job], d != node else { continue }
                    if color[d] == 1 {
                        let from = stack.firstIndex(of: d)!
                        return stack[from...].map { jobs[$0] }
                    }
                    if color[d] == 0 {
                        color[d] = 1
                        stack.append(d)
                        work.append((d, 0))
                    }
                } else {
                    color[node] = 2
                    stack.removeLast()
                    work.removeLast()
                }
            }
        }
        return nil
    }
}

public struct BatchGraphError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// A small binary min-heap.
struct MinHeap<T: Comparable> {
    private var items: [T] = []

    mutating func push(_ x: T) {
        items.append(x)
        var i = items.count - 1
        while i > 0, items[(i - 1) / 2] > items[i] {
            items.swapAt(i, (i - 1) / 2)
            i = (i - 1) / 2
        }
    }

    mutating func pop() -> T? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, items[l] < items[m] { m = l }
            if r < items.count, items[r] < items[m] { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
    }
}
