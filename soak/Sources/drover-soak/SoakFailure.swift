import Foundation

/// A soak step that could not be carried out (not an invariant violation): one line.
struct SoakFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Prints a line at once (stdout is often a pipe; nothing waits in a buffer when the run is interrupted).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
