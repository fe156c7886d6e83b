import DroverCoordinator
import DroverCore
import Foundation

/// Scenarios 3, 4 and 5: a host powered off under load, busy hosts, and cancels of jobs that escape.
extension SideBySide {
    var victim: String { bed.hosts.last!.name }

    /// 12 long jobs over 3 × 4 slots; the last host is powered off. Time until the tool says the host
    /// is gone, and until its jobs run elsewhere. Drover twice: with its default `--dead-after` (10 s),
    /// beside the peers, and with `--dead-after 3`, the setting of the aim.
    func deadHost() throws {
        for deadAfter in [nil, 3.0] {
            let (detect, replace) = try droverDeadHost(on: bed, slots: 4, deadAfter: deadAfter, trials: trials)
            let metric = deadAfter.map { Metric.deadDetect(deadAfter: $0) } ?? "power-off → host marked down"
            add("dead host", metric, "s", "drover", .lower, detect, note: deadAfter == nil ? "dead-after 10 s (default)" : nil)
            add("dead host", metric.replacingOccurrences(of: "host marked down", with: "its jobs running elsewhere"), "s", "drover", .lower, replace)
        }

        let cap = quick ? 10.0 : 360
        let d = try dask.run("deadhost", ["--victim", victim, "--cap", "\(cap)"], timeout: cap + 300)
        bed.restore()
        let notNoticed = "not noticed within \(Int(cap)) s (worker-ttl 300 s by default)"
        add("dead host", "power-off → host marked down", "s", "dask", .lower, d["detect_s"]?.doubleValue.map { [$0] } ?? [], note: d["detect_s"]?.doubleValue == nil ? notNoticed : nil)
        add("dead host", "power-off → its jobs running elsewhere", "s", "dask", .lower, d["replace_s"]?.doubleValue.map { [$0] } ?? [], note: d["replace_s"]?.doubleValue == nil ? notNoticed : nil)

        // GNU parallel has no liveness check: 12 jobs, the victim's sleep and the others end in a
        // second; watch whether parallel ever gives up on the victim's jobs or ends.
        let watch = quick ? 5.0 : 60
        let peer = GNUParallel(bed: bed)
        let pid = try peer.spawn(["[ \"$(hostname)\" = \(victim) ] && exec sleep 6008; sleep 1", ":::"] + (1...12).map(String.init))
        defer { bed.killAll("^sleep 6008"); bed.restore() }
        try waitFor("4 parallel jobs running on \(victim)", timeout: 60) { bed.count(victim, "^sleep 6008") == 4 }
        try bed.run("kill", victim)
        let killed = now()
        let ended = exited(pid, within: watch) ? now() - killed : nil
        if ended == nil {
            kill(pid, SIGTERM)
            if !exited(pid, within: 2) { kill(pid, SIGTERM) }
            reap(pid, timeout: 5)
        }
        let note = ended == nil ? "never noticed: still waiting on the dead host's jobs after \(Int(watch)) s" : "parallel ended"
        add("dead host", "power-off → its jobs running elsewhere", "s", peer.tool, .lower, ended.map { [$0] } ?? [], note: note)
    }

    /// Every host's slots busy with long jobs, then all but the last host's cancelled and that host
    /// powered off: the time to it being marked down, and to its jobs running elsewhere, per trial.
    func droverDeadHost(on bed: Testbed, slots: Int, deadAfter: Double?, trials: Int) throws -> (detect: [Double], replace: [Double]) {
        var detect: [Double] = [], replace: [Double] = []
        let victim = bed.hosts.last!.name
        let options = deadAfter.map { ["--dead-after", "\(Int($0))"] } ?? []
        try withCoordinator(on: bed, slots: slots, options: options, upTimeout: 300) { c in
            let j = try c.journal()
            let n = slots * bed.hosts.count
            for _ in 0..<trials {
                let ids = try j.submit([JobRequest](repeating: JobRequest(argv: ["sleep", "6003"]), count: n))
                try waitFor("\(n) jobs running", timeout: 120) { try j.jobs(ids).filter { $0.state == .running }.count == n }
                // Only the victim's jobs stay, so the other hosts have free slots for them.
                let onVictim = try j.jobs(ids).filter { $0.host == victim }.map(\.id)
                _ = try j.requestCancel(ids.filter { !onVictim.contains($0) })
                try waitFor("the others cancelled", timeout: 120) { try j.jobs(ids).filter { $0.state.isFinal }.count == ids.count - onVictim.count }
                // Every host up before the power-off (a busy machine can make a host flap), so the
                // victim's next `down` is the one the power-off causes.
                try waitFor("every host up", timeout: 120) { try j.hosts().allSatisfy { $0.state == "up" } }
                let from = try j.lastEventID()
                let killed = now()
                try bed.run("kill", victim)
                var down = 0.0
                try waitFor("\(victim) down", timeout: 120) {
                    down = try j.allEvents(after: from).last { $0.kind == "host" && $0.host == victim && $0.state == "down" }?.time ?? 0
                    return down > 0
                }
                try waitFor("its jobs running elsewhere", timeout: 120) {
                    try onVictim.allSatisfy { id in try j.job(id).map { $0.state == .running && $0.host != victim } ?? false }
                }
                let moved = try onVictim.compactMap { try j.attempts(of: $0).last?.startedAt }.max() ?? now()
                detect.append(down - killed)
                replace.append(moved - killed)
                _ = try j.requestCancel(ids)
                try bed.run("start", victim)
                try waitFor("every job ended and \(victim) up", timeout: 120) {
                    try j.jobs(ids).allSatisfy { $0.state.isFinal } && j.hosts().allSatisfy { $0.state == "up" }
                }
            }
        }
        return (detect, replace)
    }

    /// Every slot of every host runs a CPU-bound job for 2 minutes (15 s with --quick), with
    /// `--dead-after 3` (the aim's setting; a host is suspect after 3.5 s without a heartbeat
    /// whatever the setting): hosts wrongly marked suspect or down. Must be 0. Also the agents'
    /// CPU and memory while busy.
    func falseAlarms() throws {
        let window = quick ? 15.0 : 120
        var alarms: [Double] = [], agentCPU: [Double] = [], agentRSS: [Double] = []
        try withCoordinator(options: ["--dead-after", "3"]) { c in
            let j = try c.journal()
            var burn = JobRequest(shell: "while :; do :; done")
            burn.timeout = window + 60
            let ids = try j.submit([JobRequest](repeating: burn, count: 4 * bed.hosts.count))
            try waitFor("every slot busy", timeout: 60) { try j.jobs(ids).filter { $0.state == .running }.count == ids.count }
            let from = try j.lastEventID()
            let before = bed.usage()
            let t0 = now()
            Thread.sleep(forTimeInterval: window)  // the measurement window itself, not a synchronisation
            let w = UsageWindow(before: before, after: bed.usage(), seconds: now() - t0)
            for h in bed.hosts {
                let suspicious = try j.allEvents(after: from).filter { $0.kind == "host" && $0.host == h.name && ($0.state == "suspect" || $0.state == "down") }
                alarms.append(Double(suspicious.count))
                if let cpu = w.agentPercent[h.name] { agentCPU.append(cpu) }
                if let rss = w.after[h.name]?.agentRSS { agentRSS.append(rss / 1_048_576) }
            }
            _ = try j.requestCancel(ids)
            try waitFor("the burners to end", timeout: 60) { try j.jobs(ids).allSatisfy { $0.state.isFinal } }
        }
        add("false alarms", Metric.falseAlarms(window), "count", "drover", .zero, alarms, note: "dead-after 3 s; must be 0")
        add("overhead", "agent CPU, 4 busy jobs (the daemon)", "%", "drover", .lower, agentCPU)
        add("overhead", Metric.agentRSSBusy, "MiB", "drover", .lower, agentRSS)
    }

    /// 100 cancels (24 with --quick) of jobs that leave a double-forked and a setsid child behind:
    /// processes of theirs alive on any host afterwards.
    func orphans() throws {
        let cancels = quick ? 12 : 100
        func job(_ tag: String) -> String { "setsid sh -c 'sleep \(tag) & sleep \(tag)' & (setsid sleep \(tag) &); sleep \(tag)" }
        var left = 0
        try withCoordinator { c in
            let j = try c.journal()
            var done = 0
            while done < cancels {
                let n = min(12, cancels - done)
                let ids = try j.submit([JobRequest](repeating: JobRequest(shell: job("6006")), count: n))
                try waitFor("\(n) jobs and their children running", timeout: 60) { bed.countAll("^sleep 6006") >= 4 * n }
                _ = try j.requestCancel(ids)
                try waitFor("the cancels to end", timeout: 60) { try j.jobs(ids).allSatisfy { $0.state.isFinal } }
                done += n
            }
            left = bed.countAll("^sleep 6006")
        }
        bed.killAll("^sleep 6006")
        add("orphans", Metric.orphans(cancels), "count", "drover", .zero, [Double(left)], note: "4 processes per job, 2 of them setsid")

        var peerLeft = 0
        let peer = GNUParallel(bed: bed)
        var done = 0
        while done < cancels {
            let n = min(12, cancels - done)
            let pid = try peer.spawn([job("6007"), ":::"] + (1...n).map(String.init))
            try waitFor("\(n) parallel jobs and their children running", timeout: 60) { bed.countAll("^sleep 6007") >= 4 * n }
            // Its own termination: TERM stops new jobs; a second TERM kills the running ones with --termseq.
            kill(pid, SIGTERM)
            if !exited(pid, within: 2) { kill(pid, SIGTERM) }
            _ = reap(pid, timeout: 10)
            peerLeft += bed.countAll("^sleep 6007")
            bed.killAll("^sleep 6007")
            done += n
        }
        add("orphans", Metric.orphans(cancels), "count", peer.tool, .zero, [Double(peerLeft)], note: "SIGTERM twice (--termseq)")
    }
}
