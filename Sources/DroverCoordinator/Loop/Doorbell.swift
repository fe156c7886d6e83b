import DroverCore

/// Wakes the coordinator loop: whoever has work for it (an applied event, a link that came up,
/// a journal commit by a command) rings; the loop waits for a ring or its next deadline,
/// never on a fixed tick. Rings while the loop is busy are kept (one is enough).
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
        var rings = 0
    }

    private let state = Locked(State())

    /// Wakes the waiter, or the next wait if nobody waits now.
    func ring() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.rings += 1
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.rung = true
            return nil
        }
        waiter?.resume()
    }

    /// How many times it was rung (for tests and figures).
    var rings: Int { state.withLock { $0.rings } }

    /// Returns after a ring, or after `seconds` (nil: only a ring).
    func wait(seconds: Double?) async {
        if state.withLock({ s in defer { s.rung = false }; return s.rung }) { return }
        if let seconds, seconds <= 0 { return }
        var timer: Task<Void, Never>?
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let already = state.withLock { s -> Bool in
                if s.rung {
                    s.rung = false
                    return true
                }
                s.waiter = c
                return false
            }
            if already {
                c.resume()
                return
            }
            if let seconds {
                timer = Task { [weak self] in
                    try? await Task.sleep(for: .seconds(seconds))
                    guard !Task.isCancelled else { return }
                    self?.wakeByTimer()
                }
            }
        }
        timer?.cancel()
    }

    /// The deadline passed: resumes the waiter without counting a ring.
    private func wakeByTimer() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }
}
