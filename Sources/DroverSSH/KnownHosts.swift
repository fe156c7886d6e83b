import DroverCore
import Foundation

/// OpenSSH known_hosts: lookup (plain, hashed and `[host]:port` entries, wildcards,
/// negation, `@revoked`), fingerprints, and recording a new key.
public struct KnownHosts: Sendable {
    /// One usable line of the file.
    public struct Entry: Sendable {
        public var patterns: [String]
        public var keyType: String
        public var key: [UInt8]
        public var line: Int
        public var revoked: Bool
    }

    public let file: String
    public private(set) var entries: [Entry] = []

    /// The result of checking a host's key.
    public enum Verdict: Sendable {
        case match(line: Int)
        /// Keys of the same type are recorded for this host, but none is this one.
        case mismatch(recorded: [Entry])
        /// Only keys of other types are recorded for this host.
        case otherTypesRecorded([Entry])
        case revoked(line: Int)
        case unknown
    }

    /// Reads `file`; a missing file is an empty list.
    public init(file: String) {
        let bytes = (try? LocalFile.read(file)) ?? []
        self.init(file: file, text: String(decoding: bytes, as: UTF8.self))
    }

    public init(file: String, text: String) {
        self.file = file
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var fields = raw.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let first = fields.first, !first.hasPrefix("#") else { continue }
            var revoked = false
            if first.hasPrefix("@") {
                guard first == "@revoked" else { continue }  // @cert-authority: not supported
                revoked = true
                fields.removeFirst()
            }
            guard fields.count >= 3, let key = Data(base64Encoded: fields[2]) else { continue }
            entries.append(Entry(
                patterns: fields[0].split(separator: ",").map(String.init), keyType: fields[1],
                key: Array(key), line: lineNumber, revoked: revoked))
        }
    }

    /// Entries whose host patterns match `hostName` (`addr` or `[addr]:port`).
    public func entries(for hostName: String) -> [Entry] {
        entries.filter { Self.matches(hostName, patterns: $0.patterns) }
    }

    /// Checks the key a host presented.
    public func verify(hostName: String, keyType: String, key: [UInt8]) -> Verdict {
        let candidates = entries(for: hostName)
        if let r = candidates.first(where: { $0.revoked && $0.key == key }) { return .revoked(line: r.line) }
        let usable = candidates.filter { !$0.revoked }
        if let m = usable.first(where: { $0.key == key }) { return .match(line: m.line) }
        let sameType = usable.filter { $0.keyType == keyType }
        if !sameType.isEmpty { return .mismatch(recorded: sameType) }
        if !usable.isEmpty { return .otherTypesRecorded(usable) }
        return .unknown
    }

    /// The key types recorded for a host, to prefer them during key exchange.
    public func keyTypes(for hostName: String) -> [String] {
        var out: [String] = []
        for e in entries(for: hostName) where !e.revoked && !out.contains(e.keyType) { out.append(e.keyType) }
        return out
    }

    /// Appends `hostName keytype base64` to `file`, creating it 0600 (and its folder 0700).
    public static func record(hostName: String, keyType: String, key: [UInt8], in file: String) throws(SystemError) {
        let dir = file.contains("/") ? String(file[..<file.lastIndex(of: "/")!]) : "."
        if !dir.isEmpty, !LocalFile.exists(dir), mkdir(dir, 0o700) != 0 {
            throw SystemError.current("mkdir", path: dir)
        }
        let fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 { throw SystemError.current("open", path: file) }
        defer { close(fd) }
        // Start on a new line if the file does not end with one.
        var st = stat()
        var prefix = ""
        if fstat(fd, &st) == 0, st.st_size > 0, let existing = try? LocalFile.read(file), existing.last != 0x0A {
            prefix = "\n"
        }
        let line = prefix + "\(hostName) \(keyType) \(Data(key).base64EncodedString())\n"
        try AtomicFile.writeAll(fd, Array(line.utf8), path: file)
        if fsync(fd) != 0 { throw SystemError.current("fsync", path: file) }
    }

    /// `SHA256:…` as OpenSSH prints it (base64 without padding).
    public static func fingerprint(_ key: [UInt8]) -> String {
        var b64 = Data(SHA256.hash(key)).base64EncodedString()
        while b64.hasSuffix("=") { b64.removeLast() }
        return "SHA256:" + b64
    }

    /// The key type name inside an SSH public key blob (its first string).
    public static func keyType(ofBlob blob: [UInt8]) -> String? {
        guard blob.count >= 4 else { return nil }
        let n = Int(blob[0]) << 24 | Int(blob[1]) << 16 | Int(blob[2]) << 8 | Int(blob[3])
        guard n > 0, n < 64, blob.count >= 4 + n else { return nil }
        return String(decoding: blob[4..<(4 + n)], as: UTF8.self)
    }

    /// The short name OpenSSH prints for a key type: ED25519, ECDSA, RSA, DSA.
    public static func displayName(ofKeyType type: String) -> String {
        if type.contains("ed25519") { return "ED25519" }
        if type.hasPrefix("ecdsa") { return "ECDSA" }
        if type.contains("rsa") { return "RSA" }
        if type.contains("dss") { return "DSA" }
        return type.uppercased()
    }

    /// known_hosts pattern-list matching, including `|1|salt|hash` hashed names.
    static func matches(_ hostName: String, patterns: [String]) -> Bool {
        var matched = false
        for pattern in patterns {
            if pattern.hasPrefix("|1|") {
                if hashedMatch(hostName, pattern) { matched = true }
                continue
            }
            let negated = pattern.hasPrefix("!")
            let p = negated ? String(pattern.dropFirst()) : pattern
            if Wildcard.matches(p.lowercased(), hostName.lowercased()) {
                if negated { return false }
                matched = true
            }
        }
        return matched
    }

    static func hashedMatch(_ hostName: String, _ pattern: String) -> Bool {
        let parts = pattern.split(separator: "|", omittingEmptySubsequences: true)
        guard parts.count == 3, parts[0] == "1",
              let salt = Data(base64Encoded: String(parts[1])),
              let hash = Data(base64Encoded: String(parts[2])) else { return false }
        return HMACSHA1.authenticationCode(key: Array(salt), message: Array(hostName.utf8)) == Array(hash)
    }
}
