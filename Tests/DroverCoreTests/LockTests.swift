import Foundation
import Testing
@testable import DroverCore

@Suite("Locked")
struct LockTests {
    /// Threads that increment without the mutex working would lose increments.
    @Test func concurrentIncrementsAreAllKept() {
        let counter = Locked(0)
        let threads = 8, rounds = 20_000
        let done = DispatchGroup()
        for _ in 0..<threads {
            done.enter()
            Thread {
                for _ in 0..<rounds { counter.withLock { $0 += 1 } }
                done.leave()
            }.start()
        }
        #expect(done.wait(timeout: .now() + 60) == .success)
        #expect(counter.withLock { $0 } == threads * rounds)
    }

    @Test func withLockReturnsAndRethrows() {
        struct Boom: Error {}
        let l = Locked([1, 2])
        #expect(l.withLock { $0.count } == 2)
        #expect(throws: Boom.self) { try l.withLock { _ in throw Boom() } }
        #expect(l.withLock { $0 } == [1, 2])
    }
}
