import DroverCore
import Foundation
import Hummingbird

/// The dashboard's secret (Jupyter's model): a random token kept 0600 in the state directory,
/// given once in the URL, then carried by a cookie; API clients send `Authorization: Bearer`.
public struct WebToken: Sendable {
    public let value: String

    /// The token file of a state directory.
    public static func path(state: String) -> String { state + "/web-token" }

    /// Reads the state directory's token, creating it (0600) the first time.
    public static func load(state: String) throws -> WebToken {
        let path = path(state: state)
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if t.count >= 32 { return WebToken(value: t) }
        }
        var rng = SystemRandomNumberGenerator()
        let token = hexString((0..<24).map { _ in UInt8.random(in: 0...255, using: &rng) })
        try AtomicFile.write(Array((token + "\n").utf8), to: path, mode: 0o600)
        return WebToken(value: token)
    }

    public init(value: String) { self.value = value }

    /// What pages put in their forms and scripts to prove an action comes from a page of this
    /// server (a cross-site form can send the cookie, but cannot read this).
    public var csrf: String { hexString(SHA256.hash(Array(("drover-csrf:" + value).utf8))) }

    /// Compares in time independent of where the first difference is.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var d: UInt8 = 0
        for i in x.indices { d |= x[i] ^ y[i] }
        return d == 0
    }
}

/// Refuses every request without the token; turns `?token=` into a cookie; checks the CSRF
/// proof of actions made with the cookie; adds the headers that keep pages inert elsewhere.
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: WebToken
    static var cookie: String { "drover_token" }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await check(request, context: context, next: next)
        response.headers[.contentSecurityPolicy] = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.init("Referrer-Policy")!] = "no-referrer"
        response.headers[.cacheControl] = response.headers[.cacheControl] ?? "no-store"
        return response
    }

    private func check(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let query = request.uri.queryParameters
        if let given = query.get("token"), WebToken.same(given, token.value), request.method == .get {
            // The first visit: keep the token in a cookie and drop it from the address bar.
            var keep = request.uri.path
            let rest = query.filter { String($0.key) != "token" }.map { "\($0.key)=\($0.value)" }
            if !rest.isEmpty { keep += "?" + rest.joined(separator: "&") }
            var response = Response(status: .seeOther, headers: [.location: keep])
            response.setCookie(Cookie(name: Self.cookie, value: token.value, path: "/", httpOnly: true, sameSite: .strict))
            return response
        }
        var bearer = false
        if let auth = request.headers[.authorization], auth.hasPrefix("Bearer ") {
            guard WebToken.same(String(auth.dropFirst(7)), token.value) else { return refuse(request, "the bearer token is wrong") }
            bearer = true
        } else if let c = request.cookies[Self.cookie]?.value, WebToken.same(c, token.value) {
            bearer = false
        } else {
            return refuse(request, "this server needs its token: open the URL `drover serve` printed (…/?token=…), or send `Authorization: Bearer TOKEN` (the token is in STATE/web-token)")
        }
        if request.method != .get && request.method != .head && !bearer {
            // With the cookie, an action must prove it comes from one of our pages.
            let proof = request.headers[.init("X-Drover-CSRF")!] ?? query.get("csrf")
            guard let proof, WebToken.same(proof, token.csrf) else {
                return Response(status: .forbidden, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: ResponseBody(byteBuffer: ByteBuffer(string: "refused: an action needs the page's CSRF proof (X-Drover-CSRF header or csrf parameter), or Authorization: Bearer\n")))
            }
        }
        return try await next(request, context)
    }

    private func refuse(_ request: Request, _ message: String) -> Response {
        if request.uri.path.hasPrefix("/api/") || request.uri.path == "/metrics" {
            return WebJSON.error(.unauthorized, message)
        }
        return Response(status: .unauthorized, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: message + "\n")))
    }
}
