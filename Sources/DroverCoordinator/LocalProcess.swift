import DroverCore
import DroverSSH
import Foundation

/// Runs local programs with posix_spawn: every signal unblocked and at its default (Swift's
/// threads block some, and children would inherit that), output collected through files so
/// a daemon the program starts cannot hold the call open.
enum LocalProcess {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func run(_ argv: [String], timeout: Double) throws -> (status: ExitStatus, stdout: [UInt8], stderr: [UInt8]) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-local-\(UUID().uuidString.prefix(8))").path
        guard mkdir(dir, 0o700) == 0 else { throw Failure(description: SystemError.current("mkdir", path: dir).description) }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, dir + "/out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, dir + "/err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let args = argv.map { strdup($0) } + [nil]
        defer { args.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, args, environ)
        guard rc == 0 else { throw Failure(description: "cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if Date() > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                throw Failure(description: "\(argv.joined(separator: " ").prefix(80)) did not finish within \(Int(timeout)) s")
            }
            usleep(2000)
        }
        let exit: ExitStatus = (status & 0x7f) == 0 ? .exited((status >> 8) & 0xff) : .signaled(String(status & 0x7f))
        return (exit, (try? LocalFile.read(dir + "/out")) ?? [], (try? LocalFile.read(dir + "/err")) ?? [])
    }
}
