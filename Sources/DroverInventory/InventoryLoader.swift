import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds, parses and validates `hosts.json`.
///
/// Lookup order: `--inventory FILE`, `$DROVER_INVENTORY`, `./hosts.json`,
/// `$XDG_CONFIG_HOME/drover/hosts.json` (default `~/.config/drover/hosts.json`);
/// with none, a single `local` host.
public struct InventoryLoader {
    /// The file named by `--inventory`, if any.
    public var explicitPath: String?
    /// Reads an environment variable (injectable for tests).
    public var environment: @Sendable (String) -> String?
    public var workingDirectory: String
    public var home: String
    public var localUser: String
    /// The ssh client configuration to resolve aliases against; nil loads `~/.ssh/config`.
    public var sshConfig: SSHConfig?

    public init(
        explicitPath: String? = nil,
        environment: @escaping @Sendable (String) -> String? = { LocalUser.environment($0) },
        workingDirectory: String? = nil,
        home: String = LocalUser.home,
        localUser: String = LocalUser.name,
        sshConfig: SSHConfig? = nil
    ) {
        self.explicitPath = explicitPath
        self.environment = environment
        self.workingDirectory = workingDirectory ?? Self.currentDirectory()
        self.home = home
        self.localUser = localUser
        self.sshConfig = sshConfig
    }

    /// The fields a host (or `defaults`) may set.
    public static let hostFields = [
        "name", "address", "port", "user", "identity", "known_hosts", "host_key_policy", "slots",
        "labels", "root", "env", "connect_timeout", "transport", "jump", "retention", "gpus", "facts",
    ]

    /// Finds the inventory by the lookup order and loads it.
    public func load() throws(InventoryError) -> Inventory {
        if let p = explicitPath {
            let path = absolute(p)
            guard LocalFile.exists(path) else { throw .notFound(path: path, namedBy: "--inventory") }
            return try load(file: path)
        }
        if let p = environment("DROVER_INVENTORY") {
            let path = absolute(p)
            guard LocalFile.exists(path) else { throw .notFound(path: path, namedBy: "$DROVER_INVENTORY") }
            return try load(file: path)
        }
        let configHome = environment("XDG_CONFIG_HOME") ?? home + "/.config"
        for candidate in [workingDirectory + "/hosts.json", configHome + "/drover/hosts.json"] where LocalFile.exists(candidate) {
            return try load(file: candidate)
        }
        return embeddedDefault()
    }

    /// The inventory used when no file exists: this machine, all its CPUs, no SSH.
    public func embeddedDefault() -> Inventory {
        let host = HostSpec(
            name: "local", address: "localhost", alias: "localhost", port: 22, user: localUser,
            identities: [], identityIsExplicit: false, knownHosts: home + "/.ssh/known_hosts",
            hostKeyPolicy: .strict, slots: Self.localCPUCount, labels: [:], root: home + "/.drover/local", env: [:],
            connectTimeout: 10, transport: .local, unsupportedConfig: [], ignoredConfig: [])
        return Inventory(source: .embeddedDefault, hosts: [host])
    }

    /// Loads one file.
    public func load(file path: String) throws(InventoryError) -> Inventory {
        let bytes: [UInt8]
        do { bytes = try LocalFile.read(path) } catch { throw .unreadable(error) }
        return try parse(bytes, file: path)
    }

    /// Parses and validates inventory text; `file` names it in messages.
    public func parse(_ bytes: [UInt8], file: String) throws(InventoryError) -> Inventory {
        let root: JSONNode
        do { root = try JSONParser.parse(bytes) } catch { throw .syntax(file: file, error) }
        let diagnostics = ConfigDiagnostics(file: file)
        var hosts: [HostSpec] = []
        var coordinator = CoordinatorSection()
        if var top = ObjectReader(root, path: "", diagnostics: diagnostics) {
            var defaults = RawHost()
            if let d = top.node("defaults") {
                defaults = readHost(d, path: "defaults", diagnostics: diagnostics, isDefaults: true)
            }
            coordinator = readCoordinator(top.node("coordinator"), olderQuarantine: defaults.quarantine, diagnostics: diagnostics)
            if let list = top.node("hosts") {
                if let items = list.arrayValue {
                    if items.isEmpty {
                        diagnostics.report("no hosts; add at least one (see hosts.example.json)", path: "hosts", at: list.position)
                    }
                    var firstSeen: [String: String] = [:]
                    var raws: [String: RawHost] = [:]
                    let config = sshConfig ?? SSHConfig.loadDefault()
                    for (i, item) in items.enumerated() {
                        let path = "hosts[\(i)]"
                        let raw = readHost(item, path: path, diagnostics: diagnostics, isDefaults: false)
                        guard let name = raw.name?.value else { continue }
                        if let other = firstSeen[name] {
                            diagnostics.report("duplicate host name \"\(name)\" (also \(other)); names must be unique", path: path + ".name", at: raw.name?.position)
                            continue
                        }
                        firstSeen[name] = path
                        raws[name] = raw
                        if let host = resolve(raw, defaults: defaults, path: path, config: config, diagnostics: diagnostics) {
                            hosts.append(host)
                        }
                    }
                    JumpResolver(loader: self, hosts: hosts, raws: raws, named: Set(firstSeen.keys), defaults: defaults,
                                 config: config, diagnostics: diagnostics).resolve(&hosts)
                } else {
                    diagnostics.report("must be an array of hosts, not \(list.kindDescription)", path: "hosts", at: list.position)
                }
            } else {
                diagnostics.report("missing `hosts`: the list of hosts to use", path: "", at: root.position)
            }
            top.finish()
        }
        if !diagnostics.issues.isEmpty { throw .invalid(diagnostics.issues) }
        return Inventory(source: .file(file), hosts: hosts, coordinator: coordinator)
    }

    // MARK: - Reading one host

    /// A value with the place it was written.
    struct Located<T> {
        var value: T
        var position: SourcePosition
        var path: String
    }

    /// A host entry as written, before defaults and ssh_config apply.
    struct RawHost {
        var name: Located<String>?
        var address: Located<String>?
        var port: Located<Int>?
        var user: Located<String>?
        var identity: Located<String>?
        var knownHosts: Located<String>?
        var hostKeyPolicy: HostKeyPolicy?
        var slots: Located<Int>?
        var labels: [String: String]?
        var root: Located<String>?
        var env: [String: String]?
        var connectTimeout: Double?
        var transport: Transport?
        /// The hops as written: one string per hop (a string with commas is a chain).
        var jump: Located<[String]>?
        var retention: RetentionPolicy?
        var gpus: [String]?
        var facts: [String: String]?
        /// `defaults.quarantine` (the older place of `coordinator.quarantine`).
        var quarantine: CoordinatorSection?
    }

    func readHost(_ node: JSONNode, path: String, diagnostics d: ConfigDiagnostics, isDefaults: Bool) -> RawHost {
        var raw = RawHost()
        guard var r = ObjectReader(node, path: path, diagnostics: d) else { return raw }
        func located<T>(_ key: String, _ value: T?) -> Located<T>? {
            guard let value, let n = r.node(key) else { return nil }
            return Located(value: value, position: n.position, path: r.childPath(key))
        }
        if isDefaults {
            if let n = r.node("quarantine") {
                var section = CoordinatorSection()
                section.readQuarantine(n, path: r.childPath("quarantine"), diagnostics: d)
                raw.quarantine = section
            }
            for key in ["name", "address"] {
                if let n = r.node(key) {
                    d.report("`\(key)` belongs to each host, not to defaults", path: r.childPath(key), at: n.position)
                }
            }
        } else {
            let name = r.string("name")
            raw.name = located("name", name)
            if let n = raw.name {
                if let problem = Self.nameProblem(n.value) {
                    d.report(problem, path: n.path, at: n.position)
                    raw.name = nil
                }
            } else if r.node("name") == nil {
                d.report("missing `name`: every host needs a unique name", path: path, at: node.position)
            }
            raw.address = located("address", r.string("address"))
            if let a = raw.address, let problem = Self.addressProblem(a.value) {
                d.report(problem, path: a.path, at: a.position)
            }
        }
        raw.port = located("port", r.int("port"))
        if let p = raw.port, !(1...65535).contains(p.value) {
            d.report("port \(p.value) is out of range; use 1–65535 (22 is the default)", path: p.path, at: p.position)
        }
        raw.user = located("user", r.string("user"))
        if let u = raw.user {
            if let bad = Self.unsafeCharacter(in: u.value) {
                d.report("user \(JSONText.quote(u.value)) contains \(bad); a user name may not contain shell metacharacters (\(Self.shellMetacharacters)), spaces or control characters, as OpenSSH also refuses: use the login name on the host", path: u.path, at: u.position)
            } else if u.value.isEmpty || u.value.hasPrefix("-") || u.value.contains("@") {
                d.report("\"\(u.value)\" is not a valid user name", path: u.path, at: u.position)
            }
        }
        raw.identity = located("identity", r.string("identity"))
        raw.knownHosts = located("known_hosts", r.string("known_hosts"))
        if let s = r.string("host_key_policy") {
            if let p = HostKeyPolicy(rawValue: s) {
                raw.hostKeyPolicy = p
            } else {
                d.report(choiceMessage(s, HostKeyPolicy.allCases.map(\.rawValue)), path: r.childPath("host_key_policy"), at: r.node("host_key_policy")?.position)
            }
        }
        raw.slots = located("slots", r.int("slots"))
        if let s = raw.slots, s.value < 1 {
            d.report("slots must be a positive number, not \(s.value); leave it out to use the host's CPU count", path: s.path, at: s.position)
        }
        raw.labels = r.stringMap("labels")
        if let labels = raw.labels, labels.keys.contains("") {
            d.report("label names must not be empty", path: r.childPath("labels"), at: r.node("labels")?.position)
        }
        raw.root = located("root", r.string("root"))
        if let root = raw.root, !(root.value.hasPrefix("/") || root.value.hasPrefix("~/") || root.value.hasPrefix("$HOME/")) {
            d.report("root must be an absolute path or start with ~/ (e.g. \"~/.drover\")", path: root.path, at: root.position)
        } else if let root = raw.root, let bad = root.value.unicodeScalars.first(where: Self.isControl) {
            // Other characters are quoted wherever the root goes into a remote shell line.
            d.report("root \(JSONText.quote(root.value)) contains a control character (\(Self.codePoint(bad))); use a plain path", path: root.path, at: root.position)
        } else if let root = raw.root, let problem = RootTokens.problem(root.value) {
            d.report(problem, path: root.path, at: root.position)
        }
        raw.env = r.stringMap("env")
        if let env = raw.env {
            for key in env.keys.sorted() where !Self.isEnvironmentName(key) {
                d.report("\"\(key)\" is not a valid environment variable name (letters, digits, _; not starting with a digit)", path: r.childPath("env"), at: r.node("env")?.position)
            }
        }
        if let n = r.node("connect_timeout") {
            if let t = n.doubleValue, t > 0, t <= 3600 {
                raw.connectTimeout = t
            } else {
                d.report("connect_timeout must be a number of seconds between 0 and 3600, e.g. 10", path: r.childPath("connect_timeout"), at: n.position)
            }
        }
        if let n = r.node("jump") {
            let path = r.childPath("jump")
            var items: [String]?
            if let text = n.stringValue {
                items = [text]
            } else if let list = n.arrayValue {
                items = []
                for (k, item) in list.enumerated() {
                    if let text = item.stringValue { items?.append(text) } else {
                        d.report("must be a string, not \(item.kindDescription)", path: "\(path)[\(k)]", at: item.position)
                        items = nil
                        break
                    }
                }
            } else {
                d.report("must be a host name, \"user@host:port\", a list of them (the first hop first), or \"none\"; not \(n.kindDescription)", path: path, at: n.position)
            }
            if let items {
                let hops = items.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { JumpSpec.trim(Substring($0)) }
                if hops.isEmpty || hops.contains(where: { $0.isEmpty }) {
                    d.report("empty hop in \(JSONText.quote(items.joined(separator: ","))); write host names or \"user@host:port\", the first hop first, or \"none\" for a direct connection", path: path, at: n.position)
                } else if hops.contains("none") && hops.count > 1 {
                    d.report("\"none\" cannot be part of a chain; write \"none\" alone for a direct connection", path: path, at: n.position)
                } else {
                    raw.jump = Located(value: hops, position: n.position, path: path)
                }
            }
        }
        if let n = r.node("retention") { raw.retention = readRetention(n, path: r.childPath("retention"), diagnostics: d) }
        if let n = r.node("gpus") { raw.gpus = readGPUs(n, path: r.childPath("gpus"), diagnostics: d) }
        if let n = r.node("facts") { raw.facts = readFacts(n, path: r.childPath("facts"), diagnostics: d) }
        if let s = r.string("transport") {
            if let t = Transport(rawValue: s) {
                raw.transport = t
            } else {
                d.report(choiceMessage(s, Transport.allCases.map(\.rawValue)), path: r.childPath("transport"), at: r.node("transport")?.position)
            }
        }
        r.finish()
        return raw
    }

    func choiceMessage(_ value: String, _ choices: [String]) -> String {
        var m = "\"\(value)\" is not one of " + choices.map { "`\($0)`" }.joined(separator: ", ")
        if let s = Suggestion.nearest(to: value, among: choices) { m += "; did you mean `\(s)`?" }
        return m
    }

    // MARK: - Applying defaults and ssh_config

    func resolve(_ raw: RawHost, defaults: RawHost, path: String, config: SSHConfig, diagnostics d: ConfigDiagnostics) -> HostSpec? {
        guard let name = raw.name?.value else { return nil }
        let transport = raw.transport ?? defaults.transport ?? .ssh
        let alias = raw.address?.value ?? name
        // Precedence: the host's own field, then ~/.ssh/config for its alias, then defaults, then built-ins.
        let ssh = transport == .ssh ? config.resolve(alias, localUser: localUser, home: home) : SSHConfig.Resolution()

        var identities: [String] = []
        var identityIsExplicit = false
        if let id = raw.identity ?? defaults.identity {
            identityIsExplicit = true
            let expanded = absolute(LocalUser.expand(id.value, home: home))
            if transport == .ssh && !LocalFile.isReadableFile(expanded) {
                let whereText = id.path.hasPrefix("defaults") ? id.path : path + ".identity"
                d.report("key file \(expanded) not found or not readable; fix the path or create a key with `ssh-keygen -t ed25519 -f \(expanded)`", path: whereText, at: id.position)
            }
            identities = [expanded]
        } else {
            let fallback = [home + "/.ssh/id_ed25519", home + "/.ssh/id_ecdsa"]
            identities = (ssh.identityFiles + fallback).filter { LocalFile.isReadableFile($0) }
            identities = identities.reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
        }

        let knownHosts = (raw.knownHosts?.value).map { absolute(LocalUser.expand($0, home: home)) }
            ?? ssh.knownHostsFile.map { absolute(LocalUser.expand($0, home: home)) }
            ?? (defaults.knownHosts?.value).map { absolute(LocalUser.expand($0, home: home)) }
            ?? home + "/.ssh/known_hosts"

        var labels = defaults.labels ?? [:]
        labels.merge(raw.labels ?? [:]) { _, host in host }
        var env = defaults.env ?? [:]
        env.merge(raw.env ?? [:]) { _, host in host }

        // `%h`/`%u` make a root per host; the default is one (`~/.drover/<name>`), so hosts
        // whose homes are shared never share a state directory.
        let login = transport == .local ? localUser : (raw.user?.value ?? ssh.user ?? defaults.user?.value ?? localUser)
        let template = raw.root?.value ?? defaults.root?.value ?? RootTokens.defaultRoot
        var root = RootTokens.expand(template, host: name, user: login) ?? template
        if transport == .local { root = absolute(LocalUser.expand(root, home: home)) }

        let address = raw.address?.value ?? ssh.hostName ?? (transport == .local ? "localhost" : name)
        return HostSpec(
            name: name,
            address: raw.address != nil ? (ssh.hostName ?? address) : address,
            alias: alias,
            port: raw.port?.value ?? ssh.port ?? defaults.port?.value ?? 22,
            user: raw.user?.value ?? ssh.user ?? defaults.user?.value ?? localUser,
            identities: identities,
            identityIsExplicit: identityIsExplicit,
            knownHosts: knownHosts,
            hostKeyPolicy: raw.hostKeyPolicy ?? defaults.hostKeyPolicy ?? .strict,
            slots: raw.slots?.value ?? defaults.slots?.value ?? (transport == .local ? Self.localCPUCount : nil),
            labels: labels,
            root: root,
            env: env,
            connectTimeout: raw.connectTimeout ?? ssh.connectTimeout ?? defaults.connectTimeout ?? 10,
            transport: transport,
            unsupportedConfig: ssh.unsupported,
            ignoredConfig: ssh.ignored,
            retention: raw.retention ?? defaults.retention ?? RetentionPolicy(),
            gpus: raw.gpus ?? defaults.gpus,
            facts: (defaults.facts ?? [:]).merging(raw.facts ?? [:]) { _, host in host })
    }

    // MARK: - Checks

    static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "name must not be empty" }
        if name.count > 64 { return "name is longer than 64 characters" }
        let ok = name.unicodeScalars.allSatisfy { s in
            (s >= "a" && s <= "z") || (s >= "A" && s <= "Z") || (s >= "0" && s <= "9") || s == "-" || s == "_" || s == "."
        }
        if !ok { return "name \"\(name)\" may use only letters, digits, '-', '_' and '.'" }
        if name.hasPrefix(".") || name.hasPrefix("-") { return "name \"\(name)\" must not start with '.' or '-'" }
        return nil
    }

    /// The characters refused in user names and addresses: those OpenSSH 9.6 and later refuse in
    /// user and host names given on its command line (they may reach a shell through `%u`/`%h`
    /// expansions), and the globs `*` and `?`.
    static let shellMetacharacters = #"' " ` $ \ ; & < > | ( ) { } * ?"#

    /// `U+000A` for a newline.
    static func codePoint(_ c: Unicode.Scalar) -> String {
        let hex = String(c.value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    static func isControl(_ c: Unicode.Scalar) -> Bool { c.value < 0x20 || c.value == 0x7F || (0x80..<0xA0).contains(c.value) }

    /// The first shell metacharacter, space or control character in `s`, described for a message.
    static func unsafeCharacter(in s: String) -> String? {
        let meta = Set(shellMetacharacters.unicodeScalars.filter { $0 != " " })
        guard let c = s.unicodeScalars.first(where: { meta.contains($0) || isControl($0) || $0.properties.isWhitespace }) else { return nil }
        if isControl(c) || c.properties.isWhitespace { return "a space or control character (\(codePoint(c)))" }
        return "\"\(c)\""
    }

    static func addressProblem(_ address: String) -> String? {
        if address.isEmpty { return "address must not be empty" }
        if address.hasPrefix("-") { return "address must not start with '-'" }
        if let bad = unsafeCharacter(in: address), !address.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "@" }) {
            return "address \(JSONText.quote(address)) contains \(bad); a host name, IP address or ssh_config alias may not contain shell metacharacters (\(shellMetacharacters)), spaces or control characters"
        }
        if address.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "@" }) {
            return "address \"\(address)\" must be a host name, an IP address or an ssh_config alias (put the user in `user`)"
        }
        return nil
    }

    static func isEnvironmentName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, !(first >= "0" && first <= "9") else { return false }
        return s.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_"
        }
    }

    static var localCPUCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    func absolute(_ path: String) -> String {
        let p = LocalUser.expand(path, home: home)
        return p.hasPrefix("/") ? p : workingDirectory + "/" + p
    }

    static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard let p = getcwd(&buffer, buffer.count) else { return "." }
        return String(cString: p)
    }
}
