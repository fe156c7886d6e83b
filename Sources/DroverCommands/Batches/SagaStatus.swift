import DroverCoordinator

/// What `drover status` adds about sagas: each job's compensation, and for a batch named on
/// the command line its saga's state and what is left to undo.
enum SagaStatus {
    /// ` [compensated by job 17]`-style note after a job's state.
    static func jobNote(_ j: JobRecord) -> String {
        if let c = j.compensation { return " [\(c.rawValue)\(j.compensationJob.map { " by job \($0)" } ?? "")]" }
        if let o = j.compensates { return " [compensates job \(o)]" }
        return ""
    }

    /// The saga of each batch among `references` that has one.
    static func text(_ journal: Journal, references: [String]) throws -> String {
        var out = ""
        for name in references where !name.contains("/") {
            guard let batch = try journal.batch(named: name), batch.saga != nil else { continue }
            out += "\n" + (try BatchReport.build(journal, batch: batch)).sagaSummary.joined(separator: "\n").replacingOccurrences(of: "compensation: ", with: "saga of \(name): ")
        }
        return out
    }
}
