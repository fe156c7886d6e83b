import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The parts of an OpenSSH client configuration (`~/.ssh/config`) that Drover honours.
///
/// Semantics follow ssh_config(5): blocks apply when one of their `Host` patterns matches
/// the alias (with `*`, `?` and `!` negation), and for each option the first value found wins,
/// except `IdentityFile`, which accumulates.
public struct SSHConfig: Sendable {
    /// One `Host` block: its patterns and its options in file order.
    struct Block: Sendable {
        var patterns: [String]
        var options: [Option]
        /// A `Match` block: never applied, reported when it could matter.
        var isMatch = false
        var line: Int
        var file: String
    }

    struct Option: Sendable {
        var keyword: String  // lower-cased
        var spelling: String  // as written
        var arguments: [String]
        var line: Int
        var file: String
    }

    var blocks: [Block]

    /// What the configuration says for one alias.
    public struct Resolution: Sendable, Equatable {
        public var hostName: String?
        public var user: String?
        public var port: Int?
        public var identityFiles: [String] = []
        public var connectTimeout: Double?
        public var knownHostsFile: String?
        /// The `ProxyJump` hops, first one first; nil when not set, empty for `ProxyJump none`
        /// (or when a `ProxyCommand` came first: the first of the two wins, as in ssh).
        public var proxyJump: [JumpSpec]?
        /// Where `ProxyJump` was written (`file:line`), for messages.
        public var proxyJumpSource: String?
        /// Options that change how to connect and that Drover does not support (e.g. ProxyCommand).
        public var unsupported: [String] = []
        /// Options Drover ignores without harm, listed so nothing is ignored silently.
        public var ignored: [String] = []
    }

    /// Options that change where or how the connection goes, which Drover cannot honour yet.
    static let unsupportedKeywords: Set<String> = [
        "proxycommand", "hostkeyalias", "certificatefile", "pkcs11provider",
        "securitykeyprovider", "bindaddress", "bindinterface", "addressfamily", "localcommand",
        "remotecommand", "requesttty", "hostkeyalgorithms", "kexalgorithms", "ciphers", "macs",
        "pubkeyacceptedalgorithms", "pubkeyacceptedkeytypes", "globalknownhostsfile", "canonicalizehostname",
    ]

    /// Options with no effect on how Drover connects.
    static let harmlessKeywords: Set<String> = [
        "serveraliveinterval", "serveralivecountmax", "compression", "forwardagent", "forwardx11",
        "forwardx11trusted", "addkeystoagent", "usekeychain", "identitiesonly", "controlmaster",
        "controlpath", "controlpersist", "loglevel", "visualhostkey", "tcpkeepalive", "sendenv", "setenv",
        "hashknownhosts", "updatehostkeys", "checkhostip", "preferredauthentications", "passwordauthentication",
        "kbdinteractiveauthentication", "challengeresponseauthentication", "gssapiauthentication",
        "gssapidelegatecredentials", "stricthostkeychecking", "batchmode", "identityagent", "localforward",
        "remoteforward", "dynamicforward", "exitonforwardfailure", "escapechar", "permitlocalcommand",
        "connectionattempts", "numberofpasswordprompts", "streamlocalbindunlink", "ipqos", "clearallforwardings",
        "verifyhostkeydns", "userknownhostsfile", "port", "user", "hostname", "identityfile", "connecttimeout",
        "fingerprinthash", "enablesshkeysign", "hostbasedauthentication", "nohostauthenticationforlocalhost",
        "rekeylimit", "xauthlocation", "forkafterauthentication", "sessiontype", "stdinnull", "tag",
        "obscurekeystroketiming", "requiredrsasize", "enableescapecommandline", "canonicaldomains",
        "canonicalizefallbacklocal", "canonicalizemaxdots", "canonicalizepermittedcnames", "revokedhostkeys",
    ]

    /// Parses configuration text; `file` names it in messages. `Include` is resolved relative to `sshDirectory`.
    public static func parse(_ text: String, file: String, sshDirectory: String = LocalUser.home + "/.ssh", depth: Int = 0) -> SSHConfig {
        var blocks = [Block(patterns: ["*"], options: [], line: 0, file: file)]
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let words = tokenize(String(rawLine))
            guard let first = words.first else { continue }
            let keyword = first.lowercased()
            let args = Array(words.dropFirst())
            switch keyword {
            case "host":
                blocks.append(Block(patterns: args, options: [], line: lineNumber, file: file))
            case "match":
                blocks.append(Block(patterns: [], options: [], isMatch: true, line: lineNumber, file: file))
            case "include":
                guard depth < 8 else { continue }
                let enclosing = blocks[blocks.count - 1]
                for pattern in args {
                    var path = LocalUser.expand(pattern)
                    if !path.hasPrefix("/") { path = sshDirectory + "/" + path }
                    for match in globPaths(path) {
                        guard let bytes = try? LocalFile.read(match) else { continue }
                        let included = parse(String(decoding: bytes, as: UTF8.self), file: match, sshDirectory: sshDirectory, depth: depth + 1)
                        // Included options belong to the block that contains the Include line.
                        if let head = included.blocks.first { blocks[blocks.count - 1].options += head.options }
                        blocks += included.blocks.dropFirst()
                        // Lines after the Include continue the enclosing block, as in ssh.
                        if included.blocks.count > 1 {
                            var resumed = enclosing
                            resumed.options = []
                            blocks.append(resumed)
                        }
                    }
                }
            default:
                blocks[blocks.count - 1].options.append(
                    Option(keyword: keyword, spelling: first, arguments: args, line: lineNumber, file: file))
            }
        }
        return SSHConfig(blocks: blocks)
    }

    /// Loads `path` when it exists; an absent file is an empty configuration.
    public static func load(path: String) -> SSHConfig {
        guard let bytes = try? LocalFile.read(path) else { return SSHConfig(blocks: []) }
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        return parse(String(decoding: bytes, as: UTF8.self), file: path, sshDirectory: dir)
    }

    /// The user's `~/.ssh/config` followed by the system-wide `/etc/ssh/ssh_config`, as ssh reads them.
    public static func loadDefault() -> SSHConfig {
        let user = load(path: LocalUser.home + "/.ssh/config")
        let system = load(path: "/etc/ssh/ssh_config")
        return SSHConfig(blocks: user.blocks + system.blocks)
    }

    /// Resolves the options for `alias`, the name given where `ssh` would take a host.
    public func resolve(_ alias: String, localUser: String = LocalUser.name, home: String = LocalUser.home) -> Resolution {
        var r = Resolution()
        var seen = Set<String>()
        for block in blocks {
            if block.isMatch {
                if !block.options.isEmpty {
                    r.ignored.append("\(block.file):\(block.line): `Match` blocks are not evaluated by Drover")
                }
                continue
            }
            guard Self.matches(alias, patterns: block.patterns) else { continue }
            for option in block.options {
                let arg = option.arguments.first ?? ""
                let whereText = "\(option.file):\(option.line)"
                if option.keyword == "proxyjump" || option.keyword == "proxycommand" {
                    // The two share one setting: the first found wins, `none` included.
                    guard !seen.contains("proxy") else { continue }
                    seen.insert("proxy")
                    if arg.lowercased() == "none" {
                        r.proxyJump = []
                    } else if option.keyword == "proxycommand" {
                        r.proxyJump = []
                        r.unsupported.append("\(whereText): `\(option.spelling) \(option.arguments.joined(separator: " "))` is not supported by Drover: it would run a local command to carry the connection. Use `ProxyJump` in ssh_config, or `jump` in the inventory, to go through a bastion")
                    } else {
                        let text = option.arguments.joined(separator: "")
                        var hops: [JumpSpec] = []
                        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
                            if let hop = JumpSpec(String(item)) {
                                hops.append(hop)
                            } else {
                                r.unsupported.append("\(whereText): `\(option.spelling) \(text)`: \(JSONText.quote(String(item))) is not a hop Drover understands; write [user@]host[:port], hops separated by commas")
                            }
                        }
                        r.proxyJump = hops
                        r.proxyJumpSource = whereText
                    }
                    continue
                }
                if Self.unsupportedKeywords.contains(option.keyword) {
                    r.unsupported.append("\(whereText): `\(option.spelling) \(option.arguments.joined(separator: " "))` is not supported by Drover yet")
                    continue
                }
                if option.keyword == "identityfile" {
                    if arg.lowercased() != "none" {
                        r.identityFiles.append(LocalUser.expand(expandTokens(arg, alias: alias, hostName: r.hostName, user: r.user, localUser: localUser, home: home), home: home))
                    }
                    continue
                }
                guard !seen.contains(option.keyword) else { continue }
                seen.insert(option.keyword)
                switch option.keyword {
                case "hostname": r.hostName = expandTokens(arg, alias: alias, hostName: nil, user: nil, localUser: localUser, home: home)
                case "user": r.user = arg
                case "port": r.port = Int(arg)
                case "connecttimeout": r.connectTimeout = Double(arg)
                case "userknownhostsfile":
                    if arg.lowercased() != "none" { r.knownHostsFile = LocalUser.expand(arg, home: home) }
                default:
                    if !Self.harmlessKeywords.contains(option.keyword) {
                        r.ignored.append("\(whereText): `\(option.spelling)` is ignored by Drover")
                    }
                }
            }
        }
        return r
    }

    /// Whether a `Host` line names `alias` literally (not only through a wildcard), so that a
    /// bare name in a `jump` can be taken as an ssh_config alias.
    public func definesHost(_ alias: String) -> Bool {
        blocks.contains { block in
            !block.isMatch && block.line > 0 && block.patterns.flatMap { $0.split(separator: ",") }.contains {
                !$0.hasPrefix("!") && !$0.contains("*") && !$0.contains("?") && $0.lowercased() == alias.lowercased()
            }
        }
    }

    /// ssh_config(5) pattern-list matching: any positive match and no negated match.
    static func matches(_ name: String, patterns: [String]) -> Bool {
        var matched = false
        for raw in patterns.flatMap({ $0.split(separator: ",").map(String.init) }) {
            if raw.hasPrefix("!") {
                if Wildcard.matches(String(raw.dropFirst()).lowercased(), name.lowercased()) { return false }
            } else if Wildcard.matches(raw.lowercased(), name.lowercased()) {
                matched = true
            }
        }
        return matched
    }

    /// Splits a config line into words: `Key value`, `Key=value`, double quotes, `#` comments.
    static func tokenize(_ line: String) -> [String] {
        var words: [String] = []
        var current = ""
        var inQuotes = false
        var hasWord = false
        var firstSeparatorUsed = false
        for ch in line {
            if inQuotes {
                if ch == "\"" { inQuotes = false } else { current.append(ch) }
                continue
            }
            switch ch {
            case "\"":
                inQuotes = true
                hasWord = true
            case "#" where !hasWord:
                if !current.isEmpty || !words.isEmpty { current.append(ch) } else { return words }
            case " ", "\t", "\r":
                if hasWord { words.append(current); current = ""; hasWord = false }
            case "=" where words.isEmpty && !firstSeparatorUsed:
                firstSeparatorUsed = true
                if hasWord { words.append(current); current = ""; hasWord = false }
            default:
                current.append(ch)
                hasWord = true
            }
        }
        if hasWord { words.append(current) }
        return words
    }

    /// The `%h`, `%n`, `%r`, `%u`, `%d` and `%%` tokens of ssh_config(5).
    func expandTokens(_ s: String, alias: String, hostName: String?, user: String?, localUser: String, home: String) -> String {
        guard s.contains("%") else { return s }
        var out = ""
        var it = s.makeIterator()
        while let c = it.next() {
            guard c == "%", let t = it.next() else { out.append(c); continue }
            switch t {
            case "h": out += hostName ?? alias
            case "n": out += alias
            case "r": out += user ?? localUser
            case "u": out += localUser
            case "d": out += home
            case "%": out += "%"
            default: out += "%\(t)"
            }
        }
        return out
    }

    static func globPaths(_ pattern: String) -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        guard glob(pattern, 0, nil, &g) == 0 else { return [] }
        var out: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i] { out.append(String(cString: p)) }
        }
        return out.sorted()
    }
}

/// One hop of `ProxyJump` or of the inventory's `jump`: `[user@]host[:port]`, also
/// `[v6addr]:port` and `ssh://[user@]host[:port]`.
public struct JumpSpec: Sendable, Equatable, CustomStringConvertible {
    public var user: String?
    public var host: String
    public var port: Int?

    public init(user: String? = nil, host: String, port: Int? = nil) {
        self.user = user
        self.host = host
        self.port = port
    }

    /// Parses one hop; nil when it is not of that form.
    public init?(_ text: String) {
        var rest = Substring(Self.trim(Substring(text)))
        if rest.hasPrefix("ssh://") { rest = rest.dropFirst(6) }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if let at = rest.lastIndex(of: "@") {
            let u = rest[..<at]
            guard !u.isEmpty, !u.contains("@") else { return nil }
            user = String(u)
            rest = rest[rest.index(after: at)...]
        }
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            if rest.hasPrefix(":") {
                guard let p = Int(rest.dropFirst()), (1...65535).contains(p) else { return nil }
                port = p
            } else if !rest.isEmpty {
                return nil
            }
        } else if let colon = rest.firstIndex(of: ":") {
            host = String(rest[..<colon])
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
        } else {
            host = String(rest)
        }
        if host.isEmpty || host.hasPrefix("-") || host.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "@" || $0 == "," }) { return nil }
    }

    /// `s` without leading and trailing spaces and tabs.
    static func trim(_ s: Substring) -> String {
        String(s.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }

    /// As written in ProxyJump: `user@host:port`, brackets around an IPv6 address with a port.
    public var description: String {
        var s = user.map { "\($0)@" } ?? ""
        if let port { s += host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" } else { s += host }
        return s
    }
}
