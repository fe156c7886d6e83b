import DroverCore
import Foundation
import Testing
@testable import DroverSSH

@Suite("known_hosts")
struct KnownHostsTests {
    /// A real ed25519 public key made by ssh-keygen, as a blob.
    static func makeKey(_ dir: String, _ name: String) throws -> (type: String, blob: [UInt8], line: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
        p.arguments = ["-q", "-t", "ed25519", "-N", "", "-f", dir + "/" + name]
        try p.run()
        p.waitUntilExit()
        let pub = try String(contentsOfFile: dir + "/" + name + ".pub", encoding: .utf8)
        let fields = pub.split(separator: " ")
        return (String(fields[0]), Array(Data(base64Encoded: String(fields[1]))!), "\(fields[0]) \(fields[1])")
    }

    static func tempDir() throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("drover-kh-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @Test func plainPortAndWildcardEntries() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Self.makeKey(dir, "a"), b = try Self.makeKey(dir, "b")
        let kh = KnownHosts(file: "kh", text: """
            # comment
            10.0.0.1,alpha \(a.line)
            [10.0.0.1]:2222 \(b.line)
            *.lab,!bad.lab \(b.line)
            @revoked evil \(a.line)
            """)
        if case .match = kh.verify(hostName: "alpha", keyType: a.type, key: a.blob) {} else { Issue.record("alpha should match") }
        if case .match = kh.verify(hostName: "[10.0.0.1]:2222", keyType: b.type, key: b.blob) {} else { Issue.record("port entry") }
        if case .mismatch(let rec) = kh.verify(hostName: "10.0.0.1", keyType: b.type, key: b.blob) {
            #expect(rec.map(\.line) == [2])
        } else { Issue.record("expected mismatch") }
        if case .match = kh.verify(hostName: "x.lab", keyType: b.type, key: b.blob) {} else { Issue.record("wildcard") }
        if case .unknown = kh.verify(hostName: "bad.lab", keyType: b.type, key: b.blob) {} else { Issue.record("negation") }
        if case .revoked(let line) = kh.verify(hostName: "evil", keyType: a.type, key: a.blob) { #expect(line == 5) } else { Issue.record("revoked") }
    }

    @Test func hashedEntriesWrittenBySSHKeygenMatch() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Self.makeKey(dir, "a")
        let file = dir + "/known_hosts"
        try "10.250.0.11 \(a.line)\n[10.250.0.12]:2222 \(a.line)\n".write(toFile: file, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
        p.arguments = ["-q", "-H", "-f", file]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.hasPrefix("|1|"))
        let kh = KnownHosts(file: file)
        if case .match = kh.verify(hostName: "10.250.0.11", keyType: a.type, key: a.blob) {} else { Issue.record("hashed plain") }
        if case .match = kh.verify(hostName: "[10.250.0.12]:2222", keyType: a.type, key: a.blob) {} else { Issue.record("hashed port") }
        if case .unknown = kh.verify(hostName: "10.250.0.13", keyType: a.type, key: a.blob) {} else { Issue.record("other host") }
    }

    @Test func fingerprintMatchesSSHKeygen() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Self.makeKey(dir, "a")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
        p.arguments = ["-l", "-E", "sha256", "-f", dir + "/a.pub"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(text.split(separator: " ")[1] == KnownHosts.fingerprint(a.blob))
        #expect(KnownHosts.displayName(ofKeyType: a.type) == "ED25519")
    }

    @Test func recordAppendsWithMode0600() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Self.makeKey(dir, "a")
        let file = dir + "/sub/known_hosts"
        try KnownHosts.record(hostName: "[h]:2222", keyType: a.type, key: a.blob, in: file)
        try KnownHosts.record(hostName: "g", keyType: a.type, key: a.blob, in: file)
        let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
        #expect(lines == ["[h]:2222 \(a.line)", "g \(a.line)"].map { Substring($0) })
        let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func keyFileTypeAndEncryption() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try Self.makeKey(dir, "a")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
        p.arguments = ["-q", "-t", "rsa", "-b", "2048", "-N", "secret", "-f", dir + "/r"]
        try p.run()
        p.waitUntilExit()
        let ed = KeyFileInfo(path: dir + "/a")
        #expect(ed.keyType == "ssh-ed25519" && !ed.encrypted)
        let rsa = KeyFileInfo(path: dir + "/r")
        #expect(rsa.isRSA && rsa.encrypted)
    }

    @Test func remotePathQuoting() {
        #expect(RemotePath.shell("~/.drover/x y") == "\"$HOME\"/'.drover/x y'")
        #expect(RemotePath.shell("/tmp/a'b") == "'/tmp/a'\\''b'")
        #expect(sftpPath("~/.drover") == ".drover")
        #expect(sftpPath("/abs") == "/abs")
    }
}
