import DroverCore
import Foundation

/// What submitting a batch does to the journal: which jobs run (again), which are kept from
/// an earlier submission of the same batch, and which earlier rows are retired.
public struct BatchPlan: Sendable {
    /// A job of an earlier submission (the current row for its id).
    public struct Existing: Sendable {
        public var row: Int
        public var state: JobState
        public var specHash: String?

        public init(row: Int, state: JobState, specHash: String?) {
            self.row = row
            self.state = state
            self.specHash = specHash
        }
    }

    /// Jobs to record, in dependency order, with why each runs.
    public var run: [(job: BatchJob, why: String)] = []
    /// Ids of jobs that succeeded before with the same spec: not run again.
    public var kept: [String] = []
    /// Earlier rows replaced by this submission (or gone from the file).
    public var retire: [Int] = []
    /// Of those, rows still unfinished (only with `restart`): cancelled.
    public var cancel: [Int] = []
    /// Jobs left out by `limit`.
    public var limitedOut: [String] = []

    /// Plans a submission; without `restart`, refuses while jobs of the batch are unfinished.
    public static func make(_ spec: BatchSpec, existing: [String: Existing], restart: Bool, limit: Int?) throws(BatchPlanError) -> BatchPlan {
        let ordered: [BatchJob]
        do { ordered = try BatchGraph.order(spec.jobs) } catch { throw BatchPlanError(message: error.message) }
        let chosen = limit.map { Array(ordered.prefix(max(0, $0))) } ?? ordered
        var plan = BatchPlan()
        plan.limitedOut = ordered.dropFirst(chosen.count).map(\.id)
        let open = existing.filter { !$0.value.state.isFinal }
        if !restart, !open.isEmpty {
            let names = open.keys.sorted().prefix(5).joined(separator: ", ")
            throw BatchPlanError(message: "batch \(spec.name) still has \(open.count) unfinished job(s) (\(names)\(open.count > 5 ? ", …" : "")): wait for it (`drover wait \(spec.name)`), cancel it (`drover cancel \(spec.name)`), or start over with --restart")
        }
        if restart {
            plan.retire = existing.values.map(\.row).sorted()
            plan.cancel = open.values.map(\.row).sorted()
            plan.run = chosen.map { ($0, existing[$0.id] == nil ? "new" : "restart") }
            return plan
        }
        var rerun: Set<String> = []
        for job in chosen {
            let hash = specHash(job.request)
            let why: String?
            if let e = existing[job.id] {
                if e.state != .succeeded { why = "was \(e.state.rawValue)" } else if e.specHash != hash { why = "spec changed" } else if let d = job.dependencies.first(where: { rerun.contains($0.job) }) {
                    why = "depends on \(d.job), which runs again"
                } else { why = nil }
            } else {
                why = "new"
            }
            if let why {
                rerun.insert(job.id)
                plan.run.append((job, why))
                if let e = existing[job.id] { plan.retire.append(e.row) }
            } else {
                plan.kept.append(job.id)
            }
        }
        let inFile = Set(spec.jobs.map(\.id))
        plan.retire += existing.filter { !inFile.contains($0.key) }.map(\.value.row)
        plan.retire.sort()
        return plan
    }

    /// A stable hash of what a job does (command, placement, limits, input contents…).
    public static func specHash(_ request: JobRequest) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(request)) ?? Data()
        return hexString(SHA256.hash(Array(data)))
    }
}

public struct BatchPlanError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
