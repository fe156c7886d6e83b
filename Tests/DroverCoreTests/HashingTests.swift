import Testing
@testable import DroverCore

@Suite("Hashing")
struct HashingTests {
    @Test func sha256KnownVectors() {
        #expect(hexString(SHA256.hash(Array("".utf8))) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hexString(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(hexString(SHA256.hash(long)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func sha256IncrementalEqualsOneShot() {
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var h = SHA256()
        var i = 0
        while i < data.count {
            let n = min(777, data.count - i)
            h.update(data[i..<(i + n)])
            i += n
        }
        #expect(h.finalize() == SHA256.hash(data))
    }

    @Test func sha1AndHMAC() {
        #expect(hexString(SHA1.hash(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        // RFC 2202, test case 2.
        let mac = HMACSHA1.authenticationCode(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(hexString(mac) == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
    }
}
