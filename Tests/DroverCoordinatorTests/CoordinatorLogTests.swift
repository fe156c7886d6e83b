import Foundation
import Logging
import Testing
@testable import DroverCoordinator

@Suite("Coordinator log")
struct CoordinatorLogTests {
    /// What a logger with the handler writes to `fd`'s other end.
    func lines(_ body: (Logger) -> Void) throws -> [String] {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        body(Logger(label: "test") { CoordinatorLogHandler(label: $0, fd: fds[1]) })
        close(fds[1])
        return String(decoding: FileHandle(fileDescriptor: fds[0]).readDataToEndOfFile(), as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func oneTimestampedLinePerMessageWithLevelAndMetadata() throws {
        let out = try lines { log in
            log.info("h3: connecting → up")
            log.warning("h2 and h1 are the same machine", metadata: ["host": "h2"])
            log.debug("not written at the default level")
        }
        #expect(out.count == 2, "\(out)")
        let stamp = #/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /#
        #expect(out.allSatisfy { $0.contains(stamp) }, "\(out)")
        #expect(out[0].hasSuffix(" h3: connecting → up"))
        #expect(out[1].hasSuffix(" warning: h2 and h1 are the same machine host=h2"))
    }
}
