import DroverCore
import DroverSSH
import Foundation
import Testing

extension TestbedSuite {
    @Suite("SFTP")
    struct SFTPTests {
        @Test func roundTripVerifiedBySHA256() async throws {
            let dir = try Testbed.tempDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var bytes = [UInt8](repeating: 0, count: 5_000_000 + 123)
            for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 7) }
            let local = dir + "/payload.bin"
            _ = FileManager.default.createFile(atPath: local, contents: Data(bytes))
            let digest = hexString(SHA256.hash(bytes))

            let c = try await Testbed.connect("h2")
            defer { c.close() }
            try await c.makeDirectories("~/sftp-test/a/b")
            try await c.upload(file: local, to: "~/sftp-test/a/b/payload.bin", mode: 0o640)
            let info = try #require(try await c.stat("~/sftp-test/a/b/payload.bin"))
            #expect(info.size == UInt64(bytes.count) && info.isRegularFile && info.permissions == 0o640)
            #expect(try await c.stat("~/sftp-test/a")?.isDirectory == true)
            #expect(try await c.stat("~/sftp-test/nope") == nil)
            let remoteSum = try await c.run("sha256sum sftp-test/a/b/payload.bin").stdoutText
            #expect(remoteSum.hasPrefix(digest))
            try await c.download("~/sftp-test/a/b/payload.bin", to: dir + "/back.bin")
            #expect(try LocalFile.sha256(dir + "/back.bin") == digest)
            #expect(!FileManager.default.fileExists(atPath: dir + "/back.bin.drover-partial"))
            let small = try await c.readFile("~/sftp-test/a/b/payload.bin", limit: 10_000_000)
            #expect(small == bytes)
            _ = try await c.run("rm -rf sftp-test")
        }

        @Test func atomicReplaceLeavesNoTemporaryFiles() async throws {
            let c = try await Testbed.connect("h1")
            defer { c.close() }
            try await c.makeDirectories("~/replace-test")
            try await c.replaceFile("~/replace-test/state.json", with: Array("{\"v\":1}".utf8))
            try await c.replaceFile("~/replace-test/state.json", with: Array("{\"v\":2}".utf8))
            #expect(try await c.readFile("~/replace-test/state.json") == Array("{\"v\":2}".utf8))
            #expect(try await c.run("ls -A replace-test").stdoutText == "state.json\n")
            #expect(try await c.stat("~/replace-test/state.json")?.permissions == 0o600)
            _ = try await c.run("rm -rf replace-test")
        }

        @Test func missingRemoteFileIsTyped() async throws {
            let c = try await Testbed.connect("h1")
            defer { c.close() }
            await #expect {
                _ = try await c.readFile("~/definitely/not/here")
            } throws: { ($0 as? SSHError)?.kind == .noSuchFile }
            // The connection is still usable.
            #expect(try await c.run("echo ok").stdoutText == "ok\n")
        }
    }
}
