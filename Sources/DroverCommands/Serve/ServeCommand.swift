import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import DroverWeb
import Foundation

/// `drover serve`: the live dashboard and the HTTP API.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a live dashboard and an HTTP API of this coordinator's hosts, jobs and batches.",
        discussion: """
            Prints a URL with a secret token (http://127.0.0.1:PORT/?token=…, as Jupyter does): open it in a browser; the token then lives in a cookie. API clients send `Authorization: Bearer TOKEN`; the token is kept in STATE/web-token (0600) and stays the same across restarts (delete the file for a new one). Pages update themselves on every change of the journal; they are readable without JavaScript. The API is described in docs/api.yaml, the page in docs/dashboard.md.

            It listens on 127.0.0.1 only, unless --listen names another address; traffic is then not encrypted (there is no TLS here): prefer an SSH tunnel from your laptop, `ssh -L 8765:127.0.0.1:8765 THIS-MACHINE`, and open the printed URL there.

            Examples:
              drover serve
              drover serve --listen 127.0.0.1:9000
              drover serve --listen 0.0.0.0:8765     # the whole network can reach it: read the warning
            """
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions

    @Option(name: .long, help: ArgumentHelp("Address and port to listen on (port 0: any free port).", valueName: "addr:port"))
    var listen: String = "127.0.0.1:8765"

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("Not supported: see --help.", valueName: "file"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("Not supported: see --help.", valueName: "file"))
    var tlsKey: String?

    func validate() throws {
        if tlsCert != nil || tlsKey != nil {
            throw ValidationError("--tls-cert/--tls-key: drover serve does not speak TLS (it would put a TLS library into drover's build); keep it on 127.0.0.1 and reach it through an SSH tunnel (ssh -L 8765:127.0.0.1:8765 HOST), or put a TLS proxy you trust in front of it")
        }
        if Self.address(listen) == nil { throw ValidationError("--listen \(listen): expected ADDRESS:PORT, e.g. 127.0.0.1:8765 or [::1]:8765") }
    }

    /// `HOST:PORT` or `[V6]:PORT`, or nil.
    static func address(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    func run() async throws {
        guard let (host, port) = Self.address(listen) else { throw ExitCode(2) }
        let inventory = try inventoryOptions.load()
        let journal = try stateOptions.openJournal()
        let state = journal.state
        let access: JournalAccess
        let token: WebToken
        do {
            access = try JournalAccess(state)
            token = try WebToken.load(state: state.path)
        } catch {
            Terminal.error("cannot serve \(state.path): \(error)")
            throw ExitCode(1)
        }
        if !Self.isLoopback(host) {
            Terminal.note("listening on \(host), not 127.0.0.1: anyone who can reach this machine can try to connect, and the token and everything the pages show cross the network unencrypted; prefer the default address and an SSH tunnel (ssh -L \(port == 0 ? 8765 : port):127.0.0.1:\(port == 0 ? 8765 : port) THIS-MACHINE)")
        }
        let facts = Dictionary(inventory.hosts.map { ($0.name, HostFacts(labels: $0.labels, address: $0.address)) }) { a, _ in a }
        let backend = WebBackend(statePath: stateOptions.state, inventoryPath: inventoryOptions.inventory, inventory: inventory, access: access,
                                 directory: FileManager.default.currentDirectoryPath)
        let server = WebServer(site: Site(access: access, actions: backend, token: token, facts: facts), host: host, port: port)
        do {
            try await server.run { url in
                FileHandle.standardOutput.write(Data("drover serve: open \(url)\n".utf8))
            }
        } catch {
            Terminal.error("cannot serve on \(listen): \(error)")
            throw ExitCode(1)
        }
    }
}
