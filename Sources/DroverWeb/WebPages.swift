import DroverCoordinator
import Foundation
import Hummingbird

/// The dashboard's pages: plain HTML tables (readable without JavaScript), made live by
/// `/static/app.js`, which replaces each page's `#live` part after every journal commit.
struct WebPages {
    let site: Site

    func register(_ router: Router<BasicRequestContext>) {
        router.get("/") { _, _ in page("Overview", try OverviewPage(site: site).render()) }
        router.get("/jobs") { request, _ in page("Jobs", try OverviewPage(site: site).jobsPage(JobFilter(request.uri.queryParameters), query: request.uri.queryParameters)) }
        router.get("/jobs/:id") { request, context in
            guard let detail = try site.jobDetail(context.parameters.get("id") ?? "") else { return notFound("no such job") }
            let fragment = request.headers[.init("X-Drover-Fragment")!] != nil
            return page("Job \(detail.job.label)", try await JobPage(site: site, detail: detail).render(withOutput: !fragment))
        }
        router.get("/batches/:name") { _, context in
            let name = context.parameters.get("name") ?? ""
            guard let (view, jobs) = try site.batch(name) else { return notFound("no batch \(name)") }
            return page("Batch \(name)", try await BatchPage(site: site, batch: view, jobs: jobs).render())
        }
        router.get("/timeline") { request, _ in
            let q = request.uri.queryParameters
            return page("Timeline", try TimelinePage(site: site).render(batch: q.get("batch"), hours: q.get("hours", as: Double.self) ?? 1))
        }
        router.get("/events") { request, _ in
            let q = request.uri.queryParameters
            return page("Events", try OverviewPage(site: site).eventsPage(kind: q.get("kind").flatMap { $0.isEmpty ? nil : $0 }, job: q.get("job", as: Int.self)))
        }
        router.get("/static/app.js") { _, _ in asset(PageAssets.script, type: "text/javascript; charset=utf-8") }
        router.get("/static/app.css") { _, _ in asset(PageAssets.style, type: "text/css; charset=utf-8") }
        // The buttons' forms (the CSRF proof is in their URL, see AuthMiddleware).
        router.post("/jobs/:id/cancel") { _, context in
            let id = context.parameters.get("id") ?? ""
            return await afterAction("/jobs/\(HTML.component(id))") { _ = try await site.actions.cancel([id]) }
        }
        router.post("/jobs/:id/retry") { _, context in
            let id = context.parameters.get("id") ?? ""
            return await afterAction("/jobs/\(HTML.component(id))") { _ = try await site.actions.retry([id], resetBudget: false) }
        }
        router.post("/batches/:name/approve/:job") { _, context in
            let name = context.parameters.get("name") ?? "", job = context.parameters.get("job") ?? ""
            return await afterAction("/batches/\(HTML.component(name))") { _ = try await site.actions.approve(name + "/" + job) }
        }
    }

    /// Back to the page after an action, or its refusal as text.
    private func afterAction(_ back: String, _ body: () async throws -> Void) async -> Response {
        do {
            try await body()
            return Response(status: .seeOther, headers: [.location: back])
        } catch {
            let status = (error as? WebActionError).map { HTTPResponse.Status(code: $0.status) } ?? .internalServerError
            return page("Refused", "<p class=\"refusal\">\(HTML.escape("\(error)"))</p><p><a href=\"\(back)\">back</a></p>", status: status)
        }
    }

    private func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "max-age=300"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    private func notFound(_ message: String) -> Response {
        page("Not found", "<p>\(HTML.escape(message))</p>", status: .notFound)
    }

    /// The page around a body: navigation, the stylesheet, the script; `data-csrf` for actions.
    func page(_ title: String, _ body: String, status: HTTPResponse.Status = .ok) -> Response {
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(HTML.escape(title)) · drover</title><link rel="stylesheet" href="/static/app.css"></head>
            <body data-csrf="\(site.token.csrf)"><header><nav><strong>drover</strong> <a href="/">overview</a> <a href="/jobs">jobs</a> <a href="/timeline">timeline</a> <a href="/events">events</a> <a href="/metrics">metrics</a></nav>
            <span id="conn" class="conn" aria-live="polite">static page</span></header>
            <main><h1>\(HTML.escape(title))</h1>\(body)</main><script src="/static/app.js"></script></body></html>
            """
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }
}
