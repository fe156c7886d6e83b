import DroverCoordinator
import Foundation
import Hummingbird
import Logging

/// `drover serve`: the dashboard and the API over one coordinator's journal.
public struct WebServer: Sendable {
    public let site: Site
    public let host: String
    public let port: Int

    public init(site: Site, host: String, port: Int) {
        self.site = site
        self.host = host
        self.port = port
    }

    /// The router with every page and endpoint behind the token.
    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: AuthMiddleware(token: site.token))
        WebAPI(site: site).register(router)
        WebPages(site: site).register(router)
        return router
    }

    /// Serves until the process is stopped; `ready` gets the URL to open (with the token) once listening.
    public func run(ready: @escaping @Sendable (String) -> Void) async throws {
        await site.access.bell.start()
        var logger = Logger(label: "drover-serve")
        logger.logLevel = .warning
        let token = site.token.value
        let shown = host.contains(":") ? "[\(host)]" : host
        let app = Application(
            router: router(),
            configuration: .init(address: .hostname(host, port: port), serverName: "drover"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                ready("http://\(shown):\(port)/?token=\(token)")
            },
            logger: logger
        )
        try await app.runService()
        await site.access.bell.stop()
    }
}
