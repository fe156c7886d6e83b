import DroverCoordinator
import Foundation
import Hummingbird

/// JSON responses and the shapes the API returns beside the journal's own records.
enum WebJSON {
    static func encode<T: Encodable>(_ value: T) throws -> ByteBuffer {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return ByteBuffer(bytes: try e.encode(value))
    }

    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: try encode(value)))
    }

    /// `{"error": message}` with a status.
    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let body = (try? encode(["error": message])) ?? ByteBuffer(string: "{}")
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: body))
    }
}

/// A host as the API shows it: the journal's record, its age, the inventory's labels, its
/// agent's facts and its quarantine.
struct HostView: Encodable {
    var host: HostRecord
    var heartbeatAge: Double?
    var labels: [String: String]
    var platform: PlatformView?
    var quarantine: QuarantineRecord?

    func encode(to encoder: any Encoder) throws {
        try host.encode(to: encoder)
        var c = encoder.container(keyedBy: Key.self)
        try c.encodeIfPresent(heartbeatAge, forKey: .heartbeatAge)
        try c.encode(labels, forKey: .labels)
        try c.encodeIfPresent(platform, forKey: .platform)
        try c.encodeIfPresent(quarantine, forKey: .quarantine)
    }
    enum Key: String, CodingKey { case heartbeatAge, labels, platform, quarantine }
}

/// A host's platform and facts as its agent last collected them (`drover hosts --facts`).
struct PlatformView: Encodable {
    var os: String?
    var kernel: String?
    var cpu: String?
    var gpus: [String]
    /// The inventory's requested facts and their values.
    var facts: [String: String]
    var errors: [String: String]
    var collectedAt: Double

    init(_ r: HostFactsRecord) {
        os = r.report.os
        kernel = r.report.kernel
        cpu = r.report.cpu
        gpus = r.report.gpus
        facts = r.report.values
        errors = r.report.errors
        collectedAt = r.collectedAt
    }
}

/// A batch with its jobs counted by state.
struct BatchView: Encodable {
    var name: String
    var file: String?
    var results: String
    var submittedAt: Double
    var finishedAt: Double?
    var generation: Int
    var failFast: Bool
    var total: Int
    var states: [String: Int]
    /// The batch undoes its succeeded jobs when it fails for good (`compensate-on-failure`).
    var compensateOnFailure: Bool
    /// The saga: nil (no compensation asked), `compensating`, `compensated` or `stopped`.
    var saga: String?
    /// Jobs by compensation state (`compensating`, `compensated`, `compensation_failed`).
    var compensations: [String: Int]

    init(_ b: BatchRecord, jobs: [JobRecord]) {
        name = b.name
        file = b.file
        results = b.folder
        submittedAt = b.submittedAt
        finishedAt = b.finishedAt
        generation = b.generation
        failFast = b.failFast
        total = jobs.count
        states = Dictionary(grouping: jobs, by: \.state.rawValue).mapValues(\.count)
        compensateOnFailure = b.compensateOnFailure
        saga = b.saga
        compensations = Dictionary(grouping: jobs.compactMap(\.compensation), by: \.rawValue).mapValues(\.count)
    }

    /// Jobs that ended, over all jobs.
    var done: Int { states.filter { JobState(rawValue: $0.key)?.isFinal == true }.values.reduce(0, +) }
}

/// A job with its attempts.
struct JobDetail: Encodable {
    var job: JobRecord
    var attempts: [AttemptRecord]
}

/// The filter of the jobs table and `GET /api/jobs`.
struct JobFilter: Sendable {
    var state: String?
    var host: String?
    var batch: String?
    var name: String?
    var limit = 500

    init(_ query: Parameters) {
        func nonEmpty(_ k: String) -> String? { query.get(k).flatMap { $0.isEmpty ? nil : $0 } }
        state = nonEmpty("state")
        host = nonEmpty("host")
        batch = nonEmpty("batch")
        name = nonEmpty("name")
        if let l = query.get("limit", as: Int.self), l > 0 { limit = min(l, 100_000) }
    }

    /// The newest jobs that match, newest first.
    func apply(_ jobs: [JobRecord]) -> [JobRecord] {
        Array(jobs.reversed().filter { j in
            (state == nil || j.state.rawValue == state) && (host == nil || j.host == host) && (batch == nil || j.batch == batch)
                && (name == nil || (j.name ?? "").contains(name!) || (j.batchJob ?? "").contains(name!))
        }.prefix(limit))
    }
}
