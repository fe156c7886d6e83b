import DroverCore
import Foundation

/// GNU parallel with `--sshlogin` on the testbed hosts, 4 slots each, as its users run it: one
/// ssh per job. (`-M`, ControlMaster, ran every job twice with Debian 12's parallel 20221122, so
/// it is left out; see bench/README.md.)
struct GNUParallel {
    let bed: Testbed
    let tool = "parallel -S"

    func argv(slots: Int = 4, hosts: [String]? = nil, _ rest: [String]) -> [String] {
        let ssh = "ssh -i \(bed.key) -o UserKnownHostsFile=\(bed.knownHosts) -o StrictHostKeyChecking=yes -o BatchMode=yes"
        let logins = bed.hosts.filter { hosts == nil || hosts!.contains($0.name) }.map { "\(slots)/dtest@\($0.address)" }
        return ["/usr/bin/parallel", "--will-cite", "--ssh", ssh, "-S", logins.joined(separator: ",")] + rest
    }

    /// Runs parallel to the end; its wall time and the CPU seconds it and its ssh children used here.
    func run(_ rest: [String], timeout: Double = 1800) throws -> (seconds: Double, cpu: Double, outcome: ChildProcess.Outcome) {
        let cpu0 = childrenCPU()
        let t0 = now()
        let r = try ChildProcess.run(argv(rest), timeout: timeout)
        return (now() - t0, childrenCPU() - cpu0, r)
    }

    /// Starts parallel in the background (for the scenarios that kill hosts or parallel itself).
    func spawn(_ rest: [String], hosts: [String]? = nil) throws -> pid_t {
        do {
            return try ChildProcess.startDetached(argv(hosts: hosts, rest), output: "/dev/null")
        } catch {
            throw BenchFailure("cannot start parallel: \(error)")
        }
    }

    static var version: String {
        ((try? ChildProcess.run(["/usr/bin/parallel", "--version"]))?.stdoutText.split(separator: "\n").first).map(String.init) ?? "not installed"
    }
}

/// User + system CPU seconds of this process's reaped children so far.
func childrenCPU() -> Double {
    var u = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &u)
    return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
}

/// Whether a background child exits (and is reaped) within the time given.
func exited(_ pid: pid_t, within timeout: Double) -> Bool {
    let deadline = now() + timeout
    var status: Int32 = 0
    while now() < deadline {
        if waitpid(pid, &status, WNOHANG) == pid { return true }
        usleep(20_000)
    }
    return false
}

/// Waits for a background child to exit, up to a deadline; kills it with SIGKILL after that.
@discardableResult
func reap(_ pid: pid_t, timeout: Double) -> Bool {
    if exited(pid, within: timeout) { return true }
    kill(pid, SIGKILL)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return false
}
