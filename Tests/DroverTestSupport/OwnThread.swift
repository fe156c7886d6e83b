import Foundation
import Testing

/// A task executor with one thread of its own, for tests whose waits have deadlines.
///
/// Swift's cooperative pool has one thread per core: on a 2-core machine, two tests that block
/// (a child process waited for, a sync wait) hold all of it, and an async test's task — its
/// waiter, or the helper that commits what it waits for — gets no thread until they are done
/// (a follower test waited 55 s for a helper that sleeps 0.5 s). Tests on their own threads
/// do not queue behind the others; a blocking test still takes a pool thread, so the pool keeps
/// limiting how many of those run at once.
public final class OwnThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopping = false

    public init(name: String) {
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    public func enqueue(_ job: UnownedJob) {
        condition.lock()
        defer { condition.unlock() }
        if stopping {
            // A job after the test ended (a task it left behind): it runs on a thread of its own.
            Thread { job.runSynchronously(on: self.asUnownedTaskExecutor()) }.start()
            return
        }
        jobs.append(job)
        condition.signal()
    }

    /// Lets the thread end once it has run what was enqueued.
    public func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// Runs each test of a suite (and its `async let`s and task groups) on a thread of its own
/// (`OwnThreadExecutor`); helpers it starts with `Task { }` do not inherit it: start them
/// with `ownThreadTask`.
public struct OwnThreadTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        testCase == nil ? nil : self
    }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        if #available(macOS 15, *) {
            let executor = OwnThreadExecutor(name: "test \(test.name)")
            defer { executor.stop() }
            try await withTaskExecutorPreference(executor) { try await function() }
        } else {
            try await function()
        }
    }
}

extension Trait where Self == OwnThreadTrait {
    /// Each test on a thread of its own, not queued behind blocking tests on the cooperative pool.
    public static var ownThread: Self { OwnThreadTrait() }
}

/// A task on a thread of its own (a test's helper that must not wait for a pool thread).
public func ownThreadTask<T: Sendable>(_ body: sending @escaping @isolated(any) () async -> T) -> Task<T, Never> {
    if #available(macOS 15, *) {
        let executor = OwnThreadExecutor(name: "test helper")
        return Task(executorPreference: executor) {
            defer { executor.stop() }
            return await body()
        }
    }
    return Task { await body() }
}

/// A throwing task on a thread of its own.
public func ownThreadTask<T: Sendable>(_ body: sending @escaping @isolated(any) () async throws -> T) -> Task<T, any Error> {
    if #available(macOS 15, *) {
        let executor = OwnThreadExecutor(name: "test helper")
        return Task(executorPreference: executor) {
            defer { executor.stop() }
            return try await body()
        }
    }
    return Task { try await body() }
}

/// Holds every thread of Swift's cooperative pool, as blocking tests do, until `release()`
/// (or `watchdog` seconds, so that a test that needs the pool fails instead of hanging).
public final class PoolBlocker: @unchecked Sendable {
    private let gate = DispatchSemaphore(value: 0)
    private let released = WaitableFlag(false)
    private var blockers: [Task<Void, Never>] = []
    public let width = ProcessInfo.processInfo.activeProcessorCount

    /// Returns once `width` tasks of the given priority block the pool's threads.
    public init(priority: TaskPriority?, watchdog: Double = 20) {
        let started = DispatchSemaphore(value: 0)
        blockers = (0..<width).map { [gate] _ in
            Task.detached(priority: priority) {
                started.signal()
                gate.wait()
            }
        }
        Thread { [self] in
            _ = released.wait(for: true, timeout: watchdog)
            self.release()
        }.start()
        for _ in 0..<width { started.wait() }
    }

    /// Lets the blocked threads go (once).
    public func release() {
        if !released.set(true) { for _ in 0..<width { gate.signal() } }
    }

    /// Releases them and waits until they are done.
    public func finish() async {
        release()
        for b in blockers { await b.value }
    }
}

/// A flag a thread can wait on, with a deadline.
public final class WaitableFlag: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Bool

    public init(_ value: Bool) { self.value = value }

    /// Sets it and wakes the waiters; returns what it was before.
    @discardableResult
    public func set(_ v: Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let old = value
        value = v
        condition.broadcast()
        return old
    }

    /// Waits until the flag is `wanted` or `timeout` seconds passed; whether it is.
    public func wait(for wanted: Bool, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while value != wanted, condition.wait(until: deadline) {}
        return value == wanted
    }
}
