import DroverTestSupport
import Foundation
import Testing

/// Tests on their own threads go on while blocking tests hold every thread of the pool.
@Suite("Own-thread tests", .ownThread)
struct OwnThreadTests {
    @Test func aTestOnItsOwnThreadGoesOnWhileEveryPoolThreadIsBlocked() async throws {
        let pool = PoolBlocker(priority: Task.currentPriority)
        // The pool is full: a task on it does not run now.
        let probeRan = WaitableFlag(false)
        let probe = Task.detached(priority: Task.currentPriority) { probeRan.set(true) }
        #expect(!probeRan.wait(for: true, timeout: 0.3), "a task of the pool ran: the blockers did not hold every pool thread")
        // A sleep, a child task and a helper task: each needs an executor to resume on.
        let start = Date()
        try await Task.sleep(for: .milliseconds(20))
        async let child = Date()
        let helper = ownThreadTask { Date() }
        _ = await child
        _ = await helper.value
        let took = Date().timeIntervalSince(start)
        await pool.finish()
        await probe.value
        #expect(took < 10, "the test waited \(took) s for a thread of the pool")
    }
}
