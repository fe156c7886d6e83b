import DroverCoordinator
import Foundation
import Hummingbird

/// The JSON API (docs/api.yaml): reads of the journal and the actions.
struct WebAPI {
    let site: Site

    func register(_ router: Router<BasicRequestContext>) {
        router.get("/api/hosts") { _, _ in try WebJSON.response(try site.hostViews()) }
        router.get("/api/jobs") { request, _ in
            let filter = JobFilter(request.uri.queryParameters)
            return try WebJSON.response(filter.apply(try site.access.read { try $0.jobs() }))
        }
        router.get("/api/jobs/:id") { _, context in
            guard let detail = try site.jobDetail(context.parameters.get("id") ?? "") else { return WebJSON.error(.notFound, "no such job") }
            return try WebJSON.response(detail)
        }
        router.get("/api/jobs/:id/attempts") { _, context in
            guard let detail = try site.jobDetail(context.parameters.get("id") ?? "") else { return WebJSON.error(.notFound, "no such job") }
            return try WebJSON.response(detail.attempts)
        }
        router.get("/api/jobs/:id/output") { request, context in try await output(request, context) }
        router.get("/api/jobs/:id/output/stream") { request, context in
            guard let detail = try site.jobDetail(context.parameters.get("id") ?? "") else { return WebJSON.error(.notFound, "no such job") }
            return WebStreams(site: site).output(job: detail.job.id)
        }
        router.get("/api/batches") { _, _ in try WebJSON.response(try site.batchViews()) }
        router.get("/api/batches/:name") { _, context in
            let name = context.parameters.get("name") ?? ""
            guard let (view, jobs) = try site.batch(name) else { return WebJSON.error(.notFound, "no batch \(name)") }
            struct Detail: Encodable { var batch: BatchView; var jobs: [JobRecord] }
            return try WebJSON.response(Detail(batch: view, jobs: jobs))
        }
        router.get("/api/events") { request, _ in
            let q = request.uri.queryParameters
            let after = q.get("after", as: Int.self) ?? 0
            let limit = min(q.get("limit", as: Int.self) ?? 1_000, 10_000)
            let job = q.get("job", as: Int.self)
            return try WebJSON.response(try site.access.read { try $0.events(after: after, job: job, limit: limit) })
        }
        router.get("/api/events/stream") { request, _ in WebStreams(site: site).events(request) }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: try WebMetrics(site: site).text())))
        }
        router.post("/api/jobs") { request, context in
            struct Body: Decodable { var args: [String] }
            guard let body = try? await request.decode(as: Body.self, context: context) else {
                return WebJSON.error(.badRequest, "expected {\"args\": [...]}: the words of `drover submit`, e.g. [\"--name\", \"x\", \"--\", \"echo\", \"hi\"]")
            }
            return try await act { ["job": try await site.actions.submitJob(arguments: body.args)] }
        }
        router.post("/api/batches") { request, context in
            struct Body: Decodable { var content: String; var file: String?; var args: [String]? }
            guard let body = try? await request.decode(as: Body.self, context: context) else {
                return WebJSON.error(.badRequest, "expected {\"content\": \"<the batch file's JSON as text>\", \"file\": \"sweep.json\", \"args\": [\"--fail-fast\"]}")
            }
            return try await act { try await site.actions.submitBatch(content: Array(body.content.utf8), file: body.file ?? "batch.json", arguments: body.args ?? []) }
        }
        router.post("/api/jobs/:id/cancel") { _, context in
            let id = context.parameters.get("id") ?? ""
            return try await act { ["cancelled": try await site.actions.cancel([id])] }
        }
        // `drover retry`: a failed job, or a batch's failed and fail-fast-cancelled jobs.
        router.post("/api/jobs/:id/retry") { request, context in
            let id = context.parameters.get("id") ?? ""
            let reset = request.uri.queryParameters.get("resetBudget") == "true"
            return try await act { ["retried": try await site.actions.retry([id], resetBudget: reset)] }
        }
        router.post("/api/batches/:name/retry") { request, context in
            let name = context.parameters.get("name") ?? ""
            let reset = request.uri.queryParameters.get("resetBudget") == "true"
            return try await act { ["retried": try await site.actions.retry([name], resetBudget: reset)] }
        }
        router.post("/api/batches/:name/jobs/:job/approve") { _, context in
            let gate = (context.parameters.get("name") ?? "") + "/" + (context.parameters.get("job") ?? "")
            return try await act { try await site.actions.approve(gate) }
        }
    }

    /// Runs an action; a refusal becomes `{"error": the CLI's message}` with its status.
    private func act<T: Encodable>(_ body: () async throws -> T) async throws -> Response {
        do {
            return try WebJSON.response(try await body())
        } catch let e as WebActionError {
            return WebJSON.error(.init(code: e.status), e.message)
        }
    }

    /// `GET /api/jobs/ID/output?attempt=N&stream=stdout|stderr|both`: an attempt's output as plain
    /// text (the latest attempt by default); never HTML, whatever it contains.
    private func output(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard let detail = try site.jobDetail(context.parameters.get("id") ?? "") else { return WebJSON.error(.notFound, "no such job") }
        let q = request.uri.queryParameters
        let n = q.get("attempt", as: Int.self) ?? detail.job.attempt
        guard detail.attempts.contains(where: { $0.attempt == n }) else { return WebJSON.error(.notFound, "job \(detail.job.id) has no attempt \(n)") }
        let which = q.get("stream") ?? "both"
        var text: [UInt8] = []
        do {
            for try await chunk in site.actions.output(job: detail.job.id, attempt: n, follow: false) {
                switch chunk {
                case .stdout(let b) where which != "stderr": text += b
                case .stderr(let b) where which != "stdout": text += b
                default: break
                }
            }
        } catch {
            return WebJSON.error(.badGateway, "output of job \(detail.job.id) attempt \(n): \(error)")
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
    }
}
