import DroverCore
import Foundation

/// What runs on each testbed host, read from this machine's /proc: the hosts are pid namespaces
/// on this machine, so their processes are visible here (with other pids). Nothing is started
/// inside the hosts to measure them, so the measurement costs the hosts nothing.
struct HostUsage {
    /// CPU seconds so far of every process in the host's pid namespace, with the children they
    /// reaped: the agent, the sshd processes of the coordinator's connection, the `tail` and `send`
    /// processes Drover starts there, and the jobs. A host without Drover uses none while idle
    /// (its init and sshd sleep).
    var hostCPU: Double = 0
    /// CPU seconds so far of the agent daemon itself (the pid of its heartbeat file), without children.
    var agentCPU: Double?
    /// Resident set size of the agent daemon, bytes.
    var agentRSS: Double?
    /// Processes in the host's pid namespace, its init included.
    var processes = 0
}

extension Testbed {
    /// Every host's usage so far; a host that is off is missing.
    func usage() -> [String: HostUsage] {
        var hostOfNamespace: [String: String] = [:]
        var agentPID: [String: Int] = [:]
        for h in hosts {
            let hd = dir + "/hosts/" + h.name
            guard let text = try? String(contentsOfFile: hd + "/init.pid", encoding: .utf8),
                  let pid = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                  let ns = symlinkTarget("/proc/\(pid)/ns/pid") else { continue }
            hostOfNamespace[ns] = h.name
            // The agent's state folder is on the host's disk, mounted here (docs/testbed.md).
            if let b = try? LocalFile.read(hd + "/root/home/dtest/.drover/\(h.name)/heartbeat"),
               let pid = (try? JSONParser.parse(b))?["pid"]?.intValue {
                agentPID[h.name] = pid
            }
        }
        var out: [String: HostUsage] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let ns = symlinkTarget("/proc/\(entry)/ns/pid"), let host = hostOfNamespace[ns] else { continue }
            var u = out[host] ?? HostUsage()
            u.processes += 1
            u.hostCPU += processCPU(pid, children: true)
            if let a = agentPID[host], namespacePID(pid) == a {
                u.agentCPU = processCPU(pid, children: false)
                u.agentRSS = processRSS(pid)
            }
            out[host] = u
        }
        return out
    }
}

/// CPU use over a window, from two readings of `Testbed.usage()`.
struct UsageWindow {
    let before: [String: HostUsage]
    let after: [String: HostUsage]
    let seconds: Double

    /// Per host, the CPU of all its processes over the window, % of one core.
    var hostPercent: [String: Double] {
        var out: [String: Double] = [:]
        for (h, a) in after { if let b = before[h] { out[h] = (a.hostCPU - b.hostCPU) / seconds * 100 } }
        return out
    }

    /// Per host, the agent daemon's CPU over the window, % of one core (missing if it restarted).
    var agentPercent: [String: Double] {
        var out: [String: Double] = [:]
        for (h, a) in after {
            if let x = a.agentCPU, let y = before[h]?.agentCPU, x >= y { out[h] = (x - y) / seconds * 100 }
        }
        return out
    }
}

func symlinkTarget(_ path: String) -> String? {
    var buf = [CChar](repeating: 0, count: 256)
    let n = readlink(path, &buf, buf.count - 1)
    guard n > 0 else { return nil }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// User + system CPU seconds of a process so far (Linux /proc), with those of the children it
/// reaped when `children`.
func processCPU(_ pid: pid_t, children: Bool) -> Double {
    guard let b = try? LocalFile.read("/proc/\(pid)/stat") else { return 0 }
    let text = String(decoding: b, as: UTF8.self)
    guard let close = text.lastIndex(of: ")") else { return 0 }
    let f = text[text.index(after: close)...].split(separator: " ")
    guard f.count > 14, let u = Double(f[11]), let s = Double(f[12]), let cu = Double(f[13]), let cs = Double(f[14]) else { return 0 }
    return (children ? u + s + cu + cs : u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Lines of /proc/PID/status.
private func status(_ pid: pid_t) -> [Substring] {
    guard let b = try? LocalFile.read("/proc/\(pid)/status") else { return [] }
    return String(decoding: b, as: UTF8.self).split(separator: "\n")
}

/// Resident set size of a process, bytes.
func processRSS(_ pid: pid_t) -> Double? {
    guard let line = status(pid).first(where: { $0.hasPrefix("VmRSS:") }),
          let kb = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap({ Double($0) }) else { return nil }
    return kb * 1024
}

/// The pid a process has in its own (innermost) pid namespace.
func namespacePID(_ pid: pid_t) -> Int? {
    guard let line = status(pid).first(where: { $0.hasPrefix("NSpid:") }) else { return nil }
    return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.flatMap { Int($0) }
}
