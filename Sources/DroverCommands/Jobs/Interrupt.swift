import ArgumentParser
import DroverCoordinator
import DroverCore
import Foundation

/// What Ctrl-C on `drover run` (or `map`) does.
enum InterruptChoice: String, ExpressibleByArgument, CaseIterable {
    case ask, cancel, leave

    /// `--on-interrupt`, else: ask on a terminal, cancel without one.
    static func resolve(_ given: InterruptChoice?) -> InterruptChoice {
        given ?? (isatty(0) == 1 ? .ask : .cancel)
    }

    /// `.ask` answered at the terminal (`y` cancels, anything else leaves); the others as they are.
    func answered(_ question: String, cancel: String, leave: String) -> InterruptChoice {
        guard self == .ask else { return self }
        FileHandle.standardError.write(Data("\ndrover: \(question)? [y = \(cancel) / N = \(leave)] ".utf8))
        let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        return answer.hasPrefix("y") ? .cancel : .leave
    }
}

/// Turns Ctrl-C into a flag that the follow loops check when they wake, and pokes their
/// journal watches so they wake at once; they can then restore the terminal and ask what to
/// do with the remote work instead of dying with it unexplained.
final class InterruptWatch: Sendable {
    private let flag = Locked(false)
    private let watches = Locked<[JournalWatch]>([])
    /// Dispatch sources are thread-safe; libdispatch does not mark them Sendable.
    nonisolated(unsafe) private let source: any DispatchSourceSignal

    init() {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT)
        let (flag, watches) = (self.flag, self.watches)
        source.setEventHandler {
            flag.withLock { $0 = true }
            for w in watches.withLock({ $0 }) { w.poke() }
        }
        source.resume()
    }

    var fired: Bool { flag.withLock { $0 } }

    /// Pokes `watch` on Ctrl-C (and at once when it came already).
    func wakes(_ watch: JournalWatch) {
        watches.withLock { $0.append(watch) }
        if fired { watch.poke() }
    }

    func stop() { source.cancel() }
}
