import CDroverSys
import DroverCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `drover-agent facts [--request JSON]`: prints the host's facts as one `{"facts":…}` line —
/// OS release, kernel, CPU model, detected GPUs, and the output of each requested command
/// (run with `/bin/sh -c`, all at once, each killed with its process group at the timeout).
/// `link` runs it as a child when the coordinator asks, so a slow command never holds up events.
enum FactsCommand {
    static func run(_ options: inout Options) throws(AgentError) -> Int32 {
        try options.allow([])
        var request = FactsRequest(commands: [:])
        if let text = options.values["--request"] {
            guard let node = try? JSONParser.parse(Array(text.utf8)) else { throw .usage("--request must be a JSON facts request") }
            switch FactsRequest.parse(node) {
            case .success(let r): request = r
            case .failure(let e): throw .usage("--request: \(e)")
            }
        }
        let line = collect(request).line + "\n"
        return StreamIO.writeAll(1, Array(line.utf8)) ? 0 : 1
    }

    /// The report for `request`.
    static func collect(_ request: FactsRequest) -> HostFactsReport {
        var report = HostFactsReport(os: HostPlatformFacts.osRelease(), kernel: HostPlatformFacts.kernel(), cpu: HostPlatformFacts.cpuModel(), gpus: GPUDetection.devices())
        var commands = request.commands
        let smi = "__drover_nvidia_smi"
        if report.gpus.isEmpty { commands[smi] = "command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L" }
        for (name, result) in runAll(commands, timeout: request.timeout) {
            if name == smi {
                if case .success(let out) = result { report.gpus = GPUDetection.parseSMI(out) }
                continue
            }
            switch result {
            case .success(let out): report.values[name] = firstLine(out)
            case .failure(let why): report.errors[name] = why.description
            }
        }
        return report
    }

    /// The first non-empty line, trimmed (the fact), at most 200 characters.
    static func firstLine(_ text: String) -> String {
        let line = text.split(separator: "\n").map { $0.filter { $0 != "\r" } }.first { $0.contains { $0 != " " && $0 != "\t" } } ?? ""
        return String(line.drop { $0 == " " || $0 == "\t" }.prefix(200))
    }

    struct Running {
        var name: String
        var pid: pid_t
        var fd: Int32
        var output: [UInt8] = []
        var done = false
    }

    /// Runs each command with `/bin/sh -c`; its stdout and stderr together are the output.
    static func runAll(_ commands: [String: String], timeout: Double) -> [(String, Result<String, FactError>)] {
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devnull) }
        var running: [Running] = []
        var out: [(String, Result<String, FactError>)] = []
        for (name, command) in commands.sorted(by: { $0.key < $1.key }) {
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else { out.append((name, .failure(FactError("no pipe: \(SystemError.current("pipe", path: nil))")))); continue }
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            var err: Int32 = 0
            let argv = ["/bin/sh", "-c", command]
            let pid = argv.withCStrings { a in environmentCStrings { e in drover_spawn_job_wrapper("/bin/sh", a, e, nil, devnull, fds[1], fds[1], 0, &err) } }
            close(fds[1])
            guard pid > 0 else {
                close(fds[0])
                out.append((name, .failure(FactError("cannot start /bin/sh: \(SystemError("spawn", path: nil, errno: err))"))))
                continue
            }
            _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
            running.append(Running(name: name, pid: pid, fd: fds[0]))
        }
        let deadline = monotonicTime() + timeout
        var buffer = [UInt8](repeating: 0, count: 16384)
        while running.contains(where: { !$0.done }) {
            let left = deadline - monotonicTime()
            if left <= 0 { break }
            var polls = running.filter { !$0.done }.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            _ = poll(&polls, nfds_t(polls.count), Int32(min(left, 60) * 1000) + 1)
            for i in running.indices where !running[i].done {
                while true {
                    let n = buffer.withUnsafeMutableBytes { posixRead(running[i].fd, $0.baseAddress, $0.count) }
                    if n > 0 { if running[i].output.count < 65536 { running[i].output += buffer[0..<n] }; continue }
                    if n == 0 { running[i].done = true }
                    else if currentErrno() != EINTR && currentErrno() != EAGAIN && currentErrno() != EWOULDBLOCK { running[i].done = true }
                    break
                }
            }
        }
        for r in running {
            close(r.fd)
            var status: Int32 = 0
            if !r.done {
                kill(-r.pid, SIGKILL)
                kill(r.pid, SIGKILL)
            }
            while waitpid(r.pid, &status, 0) < 0 && currentErrno() == EINTR {}
            let text = String(decoding: r.output, as: UTF8.self)
            if !r.done {
                out.append((r.name, .failure(FactError("timed out after \(Int(timeout)) s"))))
            } else if drover_wifexited(status) != 0 && drover_wexitstatus(status) == 0 {
                out.append((r.name, .success(text)))
            } else {
                let how = drover_wifexited(status) != 0 ? "exit \(drover_wexitstatus(status))" : "signal \(drover_wtermsig(status))"
                out.append((r.name, .failure(FactError("\(how): \(firstLine(text))"))))
            }
        }
        return out
    }
}

/// Why a fact could not be collected.
struct FactError: Error {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The GPU devices this host has.
enum GPUDetection {
    /// `/dev/nvidia0`, `/dev/nvidia1`… as indexes (Linux); none elsewhere.
    static func devices() -> [String] {
        #if os(Linux)
        return listDirectory("/dev").compactMap { name -> Int? in
            guard name.hasPrefix("nvidia") else { return nil }
            return Int(name.dropFirst("nvidia".count))
        }.sorted().map(String.init)
        #else
        return []
        #endif
    }

    /// The indexes in `nvidia-smi -L` output (`GPU 0: NVIDIA A100 (UUID: …)`).
    static func parseSMI(_ text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("GPU "), let colon = line.firstIndex(of: ":") else { return nil }
            return Int(line[line.index(line.startIndex, offsetBy: 4)..<colon]).map(String.init)
        }
    }
}
