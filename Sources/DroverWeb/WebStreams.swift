import DroverCoordinator
import Foundation
import Hummingbird

/// The live streams (Server-Sent Events), woken by the journal's commits, never by a timer.
struct WebStreams {
    let site: Site

    static let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-store"]

    /// `GET /api/events/stream`: the audit trail after `Last-Event-ID` (or `?after=ID`; `?after=now`
    /// for new events only), one `audit` event each with its id, then live; a `change` event after
    /// every commit (heartbeats, states) tells pages to refresh.
    func events(_ request: Request) -> Response {
        let q = request.uri.queryParameters
        let resumeFrom = request.headers[.init("Last-Event-ID")!].flatMap { Int($0) } ?? q.get("after", as: Int.self)
        let fromNow = q.get("after") == "now"
        let kinds = q.get("kind").map { Set($0.split(separator: ",").map(String.init)) }
        let job = q.get("job", as: Int.self)
        let access = site.access
        return Response(status: .ok, headers: Self.headers, body: .init { writer in
            var after = try resumeFrom ?? (fromNow ? access.read { try $0.lastEventID() } : 0)
            var seen = await access.bell.current
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            while !Task.isCancelled {
                let batch = try access.read { try $0.events(after: after, job: job, limit: 500) }
                var text = ""
                for e in batch {
                    after = e.id
                    if let kinds, !kinds.contains(e.kind) { continue }
                    text += "id: \(e.id)\nevent: audit\ndata: \(String(buffer: try WebJSON.encode(e)))\n\n"
                }
                if !text.isEmpty { try await writer.write(ByteBuffer(string: text)) }
                if batch.count == 500 { continue }
                seen = await access.bell.next(after: seen)
                try await writer.write(ByteBuffer(string: "event: change\ndata: \(seen)\n\n"))
            }
            try await writer.finish(nil)
        })
    }

    /// `GET /api/jobs/ID/output/stream`: the job's output live, attempt after attempt (a re-run on
    /// another host continues the same stream): `attempt` events, then `stdout`/`stderr` events whose
    /// data is the text as a JSON string, and `end` with the job's final state.
    func output(job id: Int) -> Response {
        let access = site.access
        let actions = site.actions
        return Response(status: .ok, headers: Self.headers, body: .init { writer in
            var streamed = 0
            var seen = await access.bell.current
            try await writer.write(ByteBuffer(string: "retry: 5000\n\n"))
            while !Task.isCancelled {
                let (job, attempt) = try access.read { j -> (JobRecord?, AttemptRecord?) in
                    guard let job = try j.job(id) else { return (nil, nil) }
                    return (job, job.attempt > streamed ? try j.attempt(id, job.attempt) : nil)
                }
                guard let job else { break }
                if let a = attempt, a.agentState != nil, !a.stale, a.state != "lost" {
                    streamed = a.attempt
                    try await writer.write(ByteBuffer(string: "event: attempt\ndata: \(Self.json(["attempt": "\(a.attempt)", "host": a.host]))\n\n"))
                    do {
                        for try await chunk in actions.output(job: id, attempt: a.attempt, follow: true) {
                            switch chunk {
                            case .stdout(let b): try await writer.write(ByteBuffer(string: "event: stdout\ndata: \(Self.json(String(decoding: b, as: UTF8.self)))\n\n"))
                            case .stderr(let b): try await writer.write(ByteBuffer(string: "event: stderr\ndata: \(Self.json(String(decoding: b, as: UTF8.self)))\n\n"))
                            }
                        }
                    } catch {
                        try await writer.write(ByteBuffer(string: "event: note\ndata: \(Self.json("output of attempt \(a.attempt) on \(a.host): \(error)"))\n\n"))
                    }
                    continue
                }
                if job.state.isFinal {
                    try await writer.write(ByteBuffer(string: "event: end\ndata: \(Self.json(["state": job.state.rawValue, "reason": job.reason ?? ""]))\n\n"))
                    break
                }
                seen = await access.bell.next(after: seen)
            }
            try await writer.finish(nil)
        })
    }

    static func json<T: Encodable>(_ value: T) -> String {
        (try? WebJSON.encode(value)).map { String(buffer: $0) } ?? "null"
    }
}
