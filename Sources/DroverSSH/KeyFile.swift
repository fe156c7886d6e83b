import DroverCore
import Foundation

/// What a private key file holds, read without decrypting it: its type and whether a
/// passphrase protects it. Used to explain refusals precisely.
struct KeyFileInfo {
    var keyType: String?
    var encrypted: Bool

    var isRSA: Bool { keyType.map { $0 == "ssh-rsa" } ?? false }

    init(path: String) {
        keyType = nil
        encrypted = false
        guard let bytes = try? LocalFile.read(path) else { return }
        let text = String(decoding: bytes, as: UTF8.self)
        if text.contains("BEGIN RSA PRIVATE KEY") { keyType = "ssh-rsa" }
        if text.contains("BEGIN EC PRIVATE KEY") { keyType = "ecdsa" }
        if text.contains("BEGIN DSA PRIVATE KEY") { keyType = "ssh-dss" }
        if text.contains("ENCRYPTED") { encrypted = true }
        guard text.contains("BEGIN OPENSSH PRIVATE KEY") else { return }
        let body = text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        guard let blob = Data(base64Encoded: body).map(Array.init) else { return }
        // "openssh-key-v1\0", then ciphername, kdfname, kdfoptions, nkeys, first public key.
        let magic = Array("openssh-key-v1".utf8) + [0]
        guard blob.starts(with: magic) else { return }
        var offset = magic.count
        func string() -> [UInt8]? {
            guard offset + 4 <= blob.count else { return nil }
            let n = Int(blob[offset]) << 24 | Int(blob[offset + 1]) << 16 | Int(blob[offset + 2]) << 8 | Int(blob[offset + 3])
            offset += 4
            guard n >= 0, offset + n <= blob.count else { return nil }
            defer { offset += n }
            return Array(blob[offset..<(offset + n)])
        }
        guard let cipher = string(), string() != nil, string() != nil else { return }
        encrypted = String(decoding: cipher, as: UTF8.self) != "none"
        offset += 4  // number of keys
        if let publicKey = string() { keyType = KnownHosts.keyType(ofBlob: publicKey) }
    }
}
