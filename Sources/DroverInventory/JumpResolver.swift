import DroverCore

/// Works out every host's route through its hops, from the inventory's `jump` (a host's own,
/// else the one in `defaults`) or else `ProxyJump` in ssh_config, as `ssh -J` does:
///
/// - `jump: "h1"` (an inventory host): through h1, reached the way h1 itself is reached.
/// - `jump: "ada@bastion:2222"` or `"bastion.example.org"` (not an inventory host): through
///   that machine, with the settings ssh_config has for it (HostName, User, Port,
///   IdentityFile, UserKnownHostsFile), then the inventory's `defaults`; its own `ProxyJump`
///   applies too.
/// - `jump: ["a", "b"]` or `"a,b"`: a chain, the first hop first; a is reached its own way,
///   b through a, the host through b.
/// - `jump: "none"`: direct, whatever ssh_config says.
///
/// Problems (an unknown host name, a cycle, a host that jumps to itself, a local host as a
/// hop) are reported against the `jump` field. Problems of ssh_config's `ProxyJump` (a
/// cycle) go to the host's `unsupportedConfig`, so connecting to it fails with them.
struct JumpResolver {
    let loader: InventoryLoader
    let hosts: [HostSpec]
    let raws: [String: InventoryLoader.RawHost]
    /// Every host name written in the inventory, even of hosts that failed validation.
    let named: Set<String>
    let defaults: InventoryLoader.RawHost
    let config: SSHConfig
    let diagnostics: ConfigDiagnostics

    private final class State {
        var routes: [String: [HostSpec]] = [:]
        var failed: Set<String> = []
        var visiting: [String] = []
        /// ssh_config problems found while resolving a host's route.
        var configProblems: [String: [String]] = [:]
    }
    private let state = State()

    func resolve(_ hosts: inout [HostSpec]) {
        for i in hosts.indices {
            if let route = route(of: hosts[i].name) { hosts[i].jump = route }
            hosts[i].unsupportedConfig += state.configProblems[hosts[i].name] ?? []
        }
    }

    private func host(_ name: String) -> HostSpec? { hosts.first { $0.name == name } }

    /// The `jump` that applies to a host, with where it was written.
    private func jumpField(of name: String) -> InventoryLoader.Located<[String]>? {
        raws[name]?.jump ?? (host(name)?.transport == .ssh ? defaults.jump : nil)
    }

    /// The hops before the host `name`, or nil when they cannot be worked out (reported).
    private func route(of name: String) -> [HostSpec]? {
        if let r = state.routes[name] { return r }
        if state.failed.contains(name) { return nil }
        guard let spec = host(name) else { return nil }
        if let start = state.visiting.firstIndex(of: name) {
            let cycle = state.visiting[start...] + [name]
            let field = jumpField(of: name)
            diagnostics.report("host \"\(name)\": jump cycle \(cycle.joined(separator: " → ")); a host cannot be reached through itself — break the cycle (\"jump\": \"none\" on the host nearest to this machine)",
                               path: field?.path ?? "hosts", at: field?.position)
            for n in cycle { state.failed.insert(n) }
            return nil
        }
        state.visiting.append(name)
        defer { state.visiting.removeLast() }
        var result: [HostSpec]?
        if let field = jumpField(of: name) {
            if spec.transport == .local {
                diagnostics.report("host \"\(name)\": `jump` applies to SSH hosts only; this host has \"transport\": \"local\"", path: field.path, at: field.position)
                result = nil
            } else {
                result = chain(field, owner: name)
            }
        } else if spec.transport == .ssh {
            let r = config.resolve(spec.alias, localUser: loader.localUser, home: loader.home)
            if let hops = r.proxyJump, !hops.isEmpty {
                switch configChain(hops, seen: [spec.alias.lowercased()], source: r.proxyJumpSource ?? "ssh_config", owner: name) {
                case .success(let route): result = route
                case .failure(let problem):
                    state.configProblems[name, default: []].append(problem.text)
                    result = []
                }
            } else {
                result = []
            }
        } else {
            result = []
        }
        if let result { state.routes[name] = result } else { state.failed.insert(name) }
        return result
    }

    /// The route given by the inventory's `jump` of host `owner`.
    private func chain(_ field: InventoryLoader.Located<[String]>, owner: String) -> [HostSpec]? {
        let entries = field.value
        if entries == ["none"] { return [] }
        let fromDefaults = raws[owner]?.jump == nil
        var route: [HostSpec] = []
        for (k, entry) in entries.enumerated() {
            if entry == owner {
                let hint = fromDefaults ? "; this jump comes from `defaults`: set \"jump\": \"none\" on \(owner)" : ""
                diagnostics.report("host \"\(owner)\": jumps to itself (\"\(entry)\"); a host cannot be its own hop\(hint)", path: field.path, at: field.position)
                return nil
            }
            if named.contains(entry) {
                guard var hop = host(entry) else { return nil }  // invalid itself: already reported
                if hop.transport == .local {
                    diagnostics.report("host \"\(owner)\": jump \"\(entry)\" has \"transport\": \"local\"; a hop must be an SSH host", path: field.path, at: field.position)
                    return nil
                }
                if k == 0 {
                    guard let before = self.route(of: entry) else { return nil }
                    route += before
                }
                hop.jump = []
                route.append(hop)
                continue
            }
            guard let spec = JumpSpec(entry) else {
                diagnostics.report("host \"\(owner)\": jump \(JSONText.quote(entry)) is neither a host of this inventory nor [user@]host[:port]", path: field.path, at: field.position)
                return nil
            }
            if spec.user == nil && spec.port == nil && !spec.host.contains(".") && !spec.host.contains(":") && !config.definesHost(spec.host) {
                var message = "host \"\(owner)\": jump \"\(entry)\" is not a host of this inventory"
                if let near = Suggestion.nearest(to: entry, among: named.sorted()) { message += "; did you mean \"\(near)\"?" }
                message += " (a machine outside the inventory: write \"user@\(entry)\" or \"\(entry):22\", or define `Host \(entry)` in ~/.ssh/config)"
                diagnostics.report(message, path: field.path, at: field.position)
                return nil
            }
            if let problem = InventoryLoader.addressProblem(spec.host) {
                diagnostics.report("host \"\(owner)\": jump \(JSONText.quote(entry)): \(problem)", path: field.path, at: field.position)
                return nil
            }
            if let user = spec.user, let bad = InventoryLoader.unsafeCharacter(in: user) {
                diagnostics.report("host \"\(owner)\": jump \(JSONText.quote(entry)): the user contains \(bad)", path: field.path, at: field.position)
                return nil
            }
            if k == 0 {
                switch configChain(configHops(of: spec.host), seen: [spec.host.lowercased()], source: configSource(of: spec.host), owner: owner) {
                case .success(let before): route += before
                case .failure(let problem):
                    diagnostics.report("host \"\(owner)\": jump \"\(entry)\": \(problem.text)", path: field.path, at: field.position)
                    return nil
                }
            }
            route.append(hop(spec, position: field.position, path: field.path))
        }
        return route
    }

    struct Problem: Error { var text: String }

    private func configHops(of alias: String) -> [JumpSpec] {
        config.resolve(alias, localUser: loader.localUser, home: loader.home).proxyJump ?? []
    }

    private func configSource(of alias: String) -> String {
        config.resolve(alias, localUser: loader.localUser, home: loader.home).proxyJumpSource ?? "ssh_config"
    }

    /// The route given by ssh_config's `ProxyJump` hops (each an ssh_config alias).
    private func configChain(_ hops: [JumpSpec], seen: [String], source: String, owner: String) -> Result<[HostSpec], Problem> {
        guard let first = hops.first else { return .success([]) }
        if seen.contains(first.host.lowercased()) {
            return .failure(Problem(text: "\(source): `ProxyJump` cycle \((seen + [first.host.lowercased()]).joined(separator: " → ")); a host cannot be reached through itself"))
        }
        if seen.count > 8 {
            return .failure(Problem(text: "\(source): `ProxyJump` chain longer than 8 hops"))
        }
        var route: [HostSpec] = []
        switch configChain(configHops(of: first.host), seen: seen + [first.host.lowercased()], source: configSource(of: first.host), owner: owner) {
        case .success(let before): route += before
        case .failure(let p): return .failure(p)
        }
        for spec in hops { route.append(hop(spec, position: nil, path: "")) }
        return .success(route)
    }

    /// A hop outside the inventory: its alias resolved through ssh_config, then `defaults`.
    private func hop(_ spec: JumpSpec, position: SourcePosition?, path: String) -> HostSpec {
        let at = position ?? SourcePosition(line: 0, column: 0)
        var raw = InventoryLoader.RawHost()
        let name = spec.port.map { spec.host.contains(":") ? "[\(spec.host)]:\($0)" : "\(spec.host):\($0)" } ?? spec.host
        raw.name = InventoryLoader.Located(value: name, position: at, path: path)
        raw.address = InventoryLoader.Located(value: spec.host, position: at, path: path)
        raw.port = spec.port.map { InventoryLoader.Located(value: $0, position: at, path: path) }
        raw.user = spec.user.map { InventoryLoader.Located(value: $0, position: at, path: path) }
        raw.transport = .ssh
        // Problems of `defaults` (a missing key file) are reported for the hosts already.
        let quiet = ConfigDiagnostics(file: diagnostics.file)
        var defaults = self.defaults
        defaults.jump = nil
        var spec = loader.resolve(raw, defaults: defaults, path: path, config: config, diagnostics: quiet)!
        spec.jump = []
        return spec
    }
}
