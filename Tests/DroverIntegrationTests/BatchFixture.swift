import DroverCoordinator
import DroverCore
import Foundation
import Testing

/// Batch files and results folders for batch tests, next to a `CoordinatorFixture`.
struct BatchFiles {
    let dir: String
    var results: String { dir + "/results" }

    init() throws { dir = try Testbed.tempDirectory() }

    /// Writes `name` (a batch file or an input) into the folder and returns its path.
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let path = dir + "/" + name
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A file in a job's results folder, or nil.
    func result(_ batch: String, _ job: String, _ file: String) -> String? {
        try? String(contentsOfFile: "\(results)/\(batch)/\(job)/\(file)", encoding: .utf8)
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }
}

extension CoordinatorFixture {
    /// `drover run FILE --results R --progress lines ARGS…`.
    func runBatch(_ file: String, _ files: BatchFiles, _ args: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        try drover(["run", file, "--results", files.results, "--progress", "lines"] + args)
    }

    /// The current jobs of a batch, by their id in the batch.
    func batchJobs(_ batch: String) throws -> [String: JobRecord] {
        Dictionary(try journal().batchJobs(batch).map { ($0.batchJob ?? "", $0) }) { a, _ in a }
    }

    /// `dispatched_at` of each attempt of a job.
    func dispatchTimes(_ job: Int) throws -> [Double] {
        try journal().db.query("SELECT dispatched_at FROM attempts WHERE job=? ORDER BY attempt", .int(Int64(job))).compactMap { $0.double("dispatched_at") }
    }
}
