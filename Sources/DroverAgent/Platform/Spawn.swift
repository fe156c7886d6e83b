import CDroverSys
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Array where Element == String {
    /// Calls `body` with a NULL-terminated C array of these strings.
    func withCStrings<R>(_ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        let pointers = map { strdup($0) } + [nil]
        defer { pointers.forEach { free($0) } }
        return body(pointers)
    }
}

/// This process's environment as a C array (for exec).
func environmentCStrings<R>(_ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    currentEnvironment().withCStrings(body)
}

/// `NAME=value` entries of this process's environment.
func currentEnvironment() -> [String] {
    var out: [String] = []
    var p = environ
    while let entry = p.pointee {
        out.append(String(cString: entry))
        p += 1
    }
    return out
}

func drover_spawn_job_wrapper(
    _ path: String, _ argv: [UnsafeMutablePointer<CChar>?], _ envp: [UnsafeMutablePointer<CChar>?], _ cwd: String?,
    _ inFD: Int32, _ outFD: Int32, _ errFD: Int32, _ nice: Int32, _ err: inout Int32, limits: drover_limits? = nil
) -> pid_t {
    var l = limits ?? drover_limits(cpu_seconds: -1, open_files: -1, address_space_bytes: -1, core_bytes: -1)
    return argv.withUnsafeBufferPointer { a in
        envp.withUnsafeBufferPointer { e in
            if let cwd {
                return drover_spawn_job(path, a.baseAddress, e.baseAddress, cwd, inFD, outFD, errFD, &l, nice, nil, &err)
            }
            return drover_spawn_job(path, a.baseAddress, e.baseAddress, nil, inFD, outFD, errFD, &l, nice, nil, &err)
        }
    }
}

/// The path of the running executable (to start the shim and the detached agent).
func currentExecutable() -> String {
    #if os(Linux)
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    if n > 0 { return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    #endif
    let arg0 = CommandLine.arguments[0]
    if arg0.hasPrefix("/") { return arg0 }
    var cwd = [CChar](repeating: 0, count: 4096)
    if let p = getcwd(&cwd, cwd.count) { return String(cString: p) + "/" + arg0 }
    return arg0
}

/// Starts `argv` in a new session (setsid), detached from this process's terminal and signals;
/// its stdin is `input` (-1: /dev/null).
func spawnSession(_ argv: [String], output: String, input: Int32 = -1) throws(AgentError) -> pid_t {
    let fd = open(output, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    if fd < 0 { throw .system(.current("open", path: output)) }
    defer { close(fd) }
    var err: Int32 = 0
    let pid = argv.withCStrings { a in
        environmentCStrings { e in
            a.withUnsafeBufferPointer { ap in
                e.withUnsafeBufferPointer { ep in drover_spawn_session_input(argv[0], ap.baseAddress, ep.baseAddress, input, fd, &err) }
            }
        }
    }
    if pid < 0 { throw .system(SystemError("start \(argv[0])", path: nil, errno: err)) }
    return pid
}
