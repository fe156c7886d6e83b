import DroverCoordinator
import DroverCore
import Foundation

/// Beginning and ending each kind of fault, and verifying what it did (docs/reliability.md,
/// "Faults": the effect column).
extension FaultInjector {
    func begin(_ fault: Fault) throws {
        let host = fault.host ?? ""
        let since = activeSince
        switch fault.kind {
        case .powerCycle, .bastionOff:
            let pid = agentPid(host)
            let procs = (try? testbed.status())?[host]?.procs ?? 0
            // The host may die as soon as the command starts: the time is taken before it.
            if scratch?.host == host { scratchWipes.append(now1970) }
            powerOffs.append((host, now1970))
            try testbed.kill(host)
            let power = (try? testbed.status())?[host]?.power ?? "?"
            let ok = power == "off" && procs > 1
            let what = "\(procs) processes (agent pid \(pid.map(String.init) ?? "none")), power \(power) after the kill"
            if fault.kind == .powerCycle {
                effect(fault, since: since, ok: ok, what)
                log("power off \(host) (back on in \(String(format: "%.1f", fault.duration)) s): \(what)")
            } else {
                pendingDetail = ok ? what : "the bastion did not go off: " + what
                log("bastion off: power off \(host), cutting \(behind(host).joined(separator: ", ")) off (back on in \(String(format: "%.1f", fault.duration)) s): \(what)")
            }
        case .partition, .longPartition:
            try testbed.partition(host)
            let network = (try? testbed.status())?[host]?.network ?? "?"
            let reachable = testbed.jumps[host] == nil && tcpConnects(host)
            pendingDetail = network == "cut" && !reachable ? "link cut (port 22 unreachable)" : "the link was not cut: network \(network)\(reachable ? ", port 22 still answers" : "")"
            log("partition \(host) (heal in \(String(format: "%.1f", fault.duration)) s): \(pendingDetail)")
        case .agentKill:
            let out = try testbed.shell(host, """
                p=$(cat "$1/agent.lock" 2>/dev/null); [ -n "$p" ] && grep -qa drover-agent "/proc/$p/cmdline" 2>/dev/null || { echo none; exit 0; }
                \(Self.procState)
                kill -9 "$p"; i=0; state "$p"
                # A process in a system call that cannot be interrupted (syncfs on a loaded
                # disk) dies only when it returns: seconds on a busy machine (6 s was seen).
                while [ "$s" != gone ] && [ "$s" != Z ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); state "$p"; done
                if [ "$s" = gone ] || [ "$s" = Z ]; then echo "killed $p$([ $i -ge 50 ] && echo " (gone $((i / 10)) s after kill -9)")"; exit 0; fi
                # Still there: what it is doing, for the record.
                echo "alive $p (state $s $((i / 10)) s after kill -9; $(grep -E '^(Name|State|PPid):' "/proc/$p/status" 2>&1 | tr '\\n\\t' '  '); wchan $(cat "/proc/$p/wchan" 2>&1); stack $(head -n 3 "/proc/$p/stack" 2>&1 | tr '\\n' ' '))"
                """, root(of: host)).trimmingCharacters(in: .whitespacesAndNewlines)
            effect(fault, since: since, ok: out.hasPrefix("killed"), out == "none" ? "no agent ran on \(host)" : out == "" ? "?" : "pid \(out)")
            if out.hasPrefix("killed") { agentKilledAt[host] = since }
            log("kill -9 the agent on \(host): \(out)")
        case .agentCrash:
            let out = try testbed.shell(host, """
                pids=$(pgrep -f '[d]rover-agent' | tr '\\n' ' '); [ -n "$pids" ] || { echo "none"; exit 0; }
                kill -9 $pids 2>/dev/null; i=0
                \(Self.procState)
                alive() { left=; for p in $pids; do state "$p"; [ "$s" = gone ] || [ "$s" = Z ] || left="$left$p "; done; }
                alive; while [ -n "$left" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); alive; done
                if [ -n "$left" ]; then echo "alive $left of $pids"; else echo "killed $pids"; fi
                """).trimmingCharacters(in: .whitespacesAndNewlines)
            let n = out.split(separator: " ").count - 1
            effect(fault, since: since, ok: out.hasPrefix("killed"), out == "none" ? "no drover-agent process on \(host)" : out.hasPrefix("killed") ? "\(n) pids killed and gone: \(out.dropFirst(7))" : out)
            if out.hasPrefix("killed") { agentKilledAt[host] = since }
            log("kill -9 every drover-agent process on \(host) (agent, shims, tail): \(out)")
        case .coordinatorKill:
            let pid = coordinator.pid
            killedAt = now1970
            let status = coordinator.kill9()
            let ok = pid > 0 && status.map { $0 & 0x7f == SIGKILL } == true
            effect(fault, since: since, ok: ok, pid > 0 ? "pid \(pid) \(ok ? "died of SIGKILL" : "did not die of SIGKILL")" : "no coordinator ran")
            log("kill -9 the coordinator (pid \(pid)) (restart in \(String(format: "%.1f", fault.duration)) s)")
        case .coordinatorSleep:
            sleepingSince = now1970
            let pid = coordinator.pid
            kill(pid, SIGSTOP)
            var state = "?"
            for _ in 0..<20 {
                state = Memory.processState(pid: Int(pid))
                if state == "T" { break }
                usleep(50_000)
            }
            effect(fault, since: since, ok: state == "T", "pid \(pid) in state \(state) after SIGSTOP")
            log("SIGSTOP the coordinator (pid \(pid)) (SIGCONT in \(String(format: "%.1f", fault.duration)) s): state \(state)")
        case .diskFill:
            let free = try scratch?.fill() ?? (filled: 0, free: -1)
            let ok = free.free >= 0 && free.free <= 64 && free.filled > 0
            effect(fault, since: since, ok: ok, "\(free.filled / 1024) MiB filled, \(free.free) KiB free")
            log("fill the agent root on \(host) (tmpfs \(scratch?.megabytes ?? 0) MiB; free again in \(String(format: "%.1f", fault.duration)) s): \(free.filled / 1024) MiB filled, \(free.free) KiB free")
        case .journalFull:
            let r = journalDisk.fill()
            refusedSubmissions = 0
            pendingDetail = "\(r.filled / 1024) MiB filled, \(r.free) KiB free on the state directory"
            pendingOK = r.free <= 64 && r.filled > 0
            log("fill the coordinator's state directory (tmpfs \(journalDisk.megabytes) MiB; free again in \(String(format: "%.1f", fault.duration)) s): \(r.filled / 1024) MiB filled, \(r.free) KiB free")
        case .blackHole:
            if try files.removeTool(on: host, testbed) {
                toolAwaySince = now1970
                // As many jobs pinned there as the breaker needs (different jobs failing in a row),
                // with a budget that outlasts its probes, so the hole is hit and the host can be
                // quarantined even among many hosts.
                var ids: [Int] = []
                for _ in 0..<Soak.quarantineFailures {
                    var r = JobKind.short.request(&rng, files: files)
                    r.host = host
                    r.retry?.maxAttempts = 20
                    if let id = try? submit(r, .short) { ids.append(id) }
                }
                log("black hole: take ~/\(files.tool) away on \(host) (back in \(String(format: "%.1f", fault.duration)) s); jobs \(ids.map(String.init).joined(separator: ", ")) pinned there")
            } else {
                toolAwaySince = nil
                effect(fault, since: since, ok: false, "no tool on \(host) to take away")
            }
        }
    }

    func end(_ fault: Fault) throws {
        let host = fault.host ?? ""
        let since = activeSince
        switch fault.kind {
        case .powerCycle, .bastionOff:
            try testbed.start(host)
            if scratch?.host == host { try scratch?.mount() }
            for h in [host] + behind(host) { cuts.append((h, cutBegins(h, since: since), now1970)) }
            if fault.kind == .bastionOff {
                // The hosts behind it: the coordinator heard no heartbeat of them any more.
                let silent = behind(host).map { h in (h, turnedSilent(h)) }
                let ok = pendingDetail.hasPrefix("the bastion") == false && !silent.isEmpty && silent.allSatisfy(\.1)
                effect(fault, since: since, ok: ok, pendingDetail + "; " + silent.map { "\($0.0) \($0.1 ? "went suspect/down" : "stayed up (heartbeats went on)")" }.joined(separator: ", "))
            }
            log("power on \(host)\(scratch?.host == host ? " (tmpfs agent root mounted again, empty)" : "")")
        case .partition, .longPartition:
            let states = journal?.soakHostStates(host, since: since) ?? []
            try testbed.heal(host)
            // A bastion's partition cuts the hosts behind it off as well.
            for h in [host] + behind(host) { cuts.append((h, cutBegins(h, since: since), now1970)) }
            let silent = states.contains { $0 == "suspect" || $0 == "down" }
            let ok = pendingDetail.hasPrefix("link cut") && silent
            var detail = pendingDetail + (silent ? "; heartbeats stopped (host \(states.joined(separator: " → ")))" : "; the host never turned suspect (heartbeats went on?)")
            if fault.kind == .longPartition {
                longPartitions.append((host, since, now1970, leaseJob?.host == host ? leaseJob?.job : nil))
                leaseJob = nil
                detail += "; lease expiry checked at the end"
            }
            effect(fault, since: since, ok: ok, detail)
            log("heal \(host)")
        case .coordinatorKill:
            try coordinator.start()
            coordinatorOutages.append((killedAt ?? 0, now1970))
            log("coordinator started again (pid \(coordinator.pid))")
        case .coordinatorSleep:
            kill(coordinator.pid, SIGCONT)
            coordinatorSleeps.append((sleepingSince ?? 0, now1970))
            coordinatorOutages.append((sleepingSince ?? 0, now1970))
            log("SIGCONT the coordinator (pid \(coordinator.pid))")
        case .diskFill:
            try scratch?.drain()
            diskFulls.append((since, now1970))
            log("free the agent root on \(host)")
        case .journalFull:
            journalDisk.drain()
            journalFulls.append((since, now1970))
            effect(fault, since: since, ok: pendingOK, pendingDetail + "; \(refusedSubmissions) submission(s) refused meanwhile")
            log("free the coordinator's state directory")
        case .blackHole:
            guard let away = toolAwaySince else { break }
            try files.restoreTool(on: host, testbed)
            blackHoles.append((host, away, now1970))
            let failures = journal?.soakToolFailures(host, since: away) ?? 0
            effect(fault, since: since, ok: failures > 0, failures > 0 ? "tool away \(Int(now1970 - away)) s; \(failures) attempt(s) exited 127 there" : "tool away \(Int(now1970 - away)) s, but no job exited 127 there")
            toolAwaySince = nil
            log("black hole over: ~/\(files.tool) back on \(host)")
        case .agentKill, .agentCrash:
            break
        }
    }

    /// A shell function `state PID` that sets `$s` to the process's state letter (`gone` when it
    /// has no `/proc` entry), read with the shell's own `read` (no fork: a host short of pids or
    /// memory cannot blank it) and taken after the command name's last ") ".
    static let procState = #"state() { l=; read -r l 2>/dev/null < "/proc/$1/stat" || { s=gone; return; }; l=${l##*) }; s=${l%% *}; }"#

    /// The pid of the agent daemon on `host` (from its `agent.lock`, alive), nil when none runs.
    func agentPid(_ host: String) -> Int? {
        let out = try? testbed.shell(host, #"p=$(cat "$1/agent.lock" 2>/dev/null) && [ -n "$p" ] && grep -qa drover-agent "/proc/$p/cmdline" 2>/dev/null && echo "$p""#, root(of: host), timeout: 10)
        return out.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Whether a TCP connection to `host`'s port 22 succeeds from this machine within 2 s.
    func tcpConnects(_ host: String) -> Bool {
        guard let address = testbed.addresses[host] else { return false }
        let r = try? ChildProcess.run(["/usr/bin/timeout", "2", "/bin/bash", "-c", "exec 3<>/dev/tcp/$0/22", address], timeout: 5)
        return r?.status == 0
    }
}
