import DroverCore
import DroverInventory
import Foundation

/// Delivers one notification to one target, blocking: a local command (the event JSON on its
/// stdin, no shell) or an HTTP POST. Runs on a thread of its own, never on the coordinator.
enum NotifyDelivery {
    /// nil when delivered, else why not.
    static func deliver(_ payload: String, event: String, to target: NotifyTarget) -> String? {
        if let url = target.url.flatMap(HTTPURL.init) {
            do {
                let status = try HTTPPost.post(Array(payload.utf8), to: url, timeout: target.timeout)
                return (200..<300).contains(status) ? nil : "\(target.label) answered HTTP \(status)"
            } catch {
                return "\(target.label): \(error.description)"
            }
        }
        guard var argv = target.command, !argv.isEmpty else { return "no command or url" }
        guard let program = resolve(argv[0]) else { return "\(argv[0]): no such program (give its full path, or put it on the coordinator's PATH)" }
        argv[0] = program
        let environment = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" } + ["DROVER_EVENT=\(event)"]
        do {
            let outcome = try ChildProcess.run(argv, environment: environment, stdin: Array(payload.utf8), timeout: target.timeout)
            guard outcome.status == 0 else {
                let err = outcome.stderrText.split(separator: "\n").first.map { ": \($0.prefix(200))" } ?? ""
                return "\(target.label) exited \(outcome.status)\(err)"
            }
            return nil
        } catch {
            return "\(target.label): \(error)"
        }
    }

    /// A program name as posix_spawn needs it: a path as given, else the first match on PATH.
    static func resolve(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The delay before delivery number `attempt + 1` (1 s, 2 s, 4 s, … at most a minute).
    static func backOff(afterAttempt attempt: Int) -> Double {
        min(60, pow(2, Double(max(0, attempt - 1))))
    }
}
