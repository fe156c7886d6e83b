import CDroverSys
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a local program to completion with posix_spawn.
///
/// Every signal starts unblocked and at its default (Swift's threads block some, and a
/// child inherits that: a daemon it starts would then ignore SIGTERM). Stdin comes from a
/// file and stdout/stderr go to files rather than pipes, so a daemon the program leaves
/// behind cannot hold the call open.
public enum ChildProcess {
    /// How the program ended and what it printed.
    public struct Outcome: Sendable {
        /// The exit code, or 128 + N when killed by signal N.
        public var status: Int32
        public var stdout: [UInt8]
        public var stderr: [UInt8]
        public var signaled: Bool { status > 128 }
        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    }

    /// Runs `argv` (argv[0] is a path) with `environment` (default: this process's); kills it
    /// with SIGKILL after `timeout` seconds.
    public static func run(_ argv: [String], environment: [String]? = nil, stdin: [UInt8] = [], timeout: Double? = nil) throws(SystemError) -> Outcome {
        var template = Array("/tmp/drover-child-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError.current("mkdtemp", path: "/tmp") }
        let dir = String(cString: made)
        defer {
            for f in ["in", "out", "err"] { unlink(dir + "/" + f) }
            rmdir(dir)
        }
        try AtomicFile.write(stdin, to: dir + "/in", durable: false)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, dir + "/in", O_RDONLY, 0)
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
        let env = environment.map { $0.map { strdup($0) } + [nil] }
        defer {
            args.forEach { free($0) }
            env?.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = env.map { posix_spawn(&pid, argv[0], &actions, &attributes, args, $0) } ?? posix_spawn(&pid, argv[0], &actions, &attributes, args, environ)
        guard rc == 0 else { throw SystemError("start", path: argv[0], errno: rc) }
        var status: Int32 = 0
        var waited = 0.0
        while true {
            let r = waitpid(pid, &status, timeout == nil ? 0 : WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { throw SystemError.current("wait for", path: argv[0]) }
            if let timeout, r == 0 {
                if waited >= timeout {
                    kill(pid, SIGKILL)
                    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                    throw SystemError("\(argv[0]) did not finish within \(Int(timeout)) s; killed", path: nil, errno: ETIMEDOUT)
                }
                usleep(2000)
                waited += 0.002
            }
        }
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Outcome(status: code, stdout: (try? LocalFile.read(dir + "/out")) ?? [], stderr: (try? LocalFile.read(dir + "/err")) ?? [])
    }

    /// Starts `argv` (argv[0] is a path) detached, in a session of its own with clean signals,
    /// stdin from /dev/null and stdout/stderr appended to `output` (created 0600); returns its
    /// pid without waiting. The caller reaps it.
    public static func startDetached(_ argv: [String], output: String) throws(SystemError) -> pid_t {
        let fd = open(output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError.current("open", path: output) }
        defer { close(fd) }
        let args = argv.map { strdup($0) } + [nil]
        defer { args.forEach { free($0) } }
        var err: Int32 = 0
        let pid = drover_spawn_session(argv[0], args, environ, fd, &err)
        guard pid > 0 else { throw SystemError("start", path: argv[0], errno: err) }
        return pid
    }
}
