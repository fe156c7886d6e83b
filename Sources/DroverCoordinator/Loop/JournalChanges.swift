import DroverCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Calls `changed` whenever a file of the journal's folder changes (a commit writes the
/// WAL), from a thread sleeping in `FileWatch.wait`: commands wake the coordinator loop this way.
final class JournalWatch: @unchecked Sendable {
    private let stopPipe: (read: Int32, write: Int32)
    private let thread: Thread

    /// Nil when the folder cannot be watched (the loop then relies on its safety wake-up).
    init?(state: StateLocation, changed: @escaping @Sendable () -> Void) {
        var p: [Int32] = [-1, -1]
        guard pipe(&p) == 0 else { return nil }
        stopPipe = (p[0], p[1])
        let watch = FileWatch()
        guard watch.watch(state.path) else {
            close(p[0])
            close(p[1])
            return nil
        }
        watch.watch(descriptor: p[0])
        let stopFD = p[0]
        // Handed to the thread, which alone uses it from now on.
        nonisolated(unsafe) let owned = watch
        thread = Thread {
            while true {
                let wake = owned.wait(timeout: nil)
                if wake.descriptors.contains(stopFD) { break }
                if !wake.paths.isEmpty || wake.overflowed { changed() }
            }
        }
        thread.name = "drover-journal-watch"
        thread.start()
    }

    /// Ends the thread.
    func stop() {
        var byte: UInt8 = 1
        _ = write(stopPipe.write, &byte, 1)
    }
}
