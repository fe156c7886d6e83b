import DroverCoordinator
import DroverCore
import Foundation
import Testing

extension TestbedSuite {
    /// A coordinator that sleeps (SIGSTOP, as a closed laptop lid does) or goes away (kill -9,
    /// a reboot) loses nothing: with the default lease of hours, the jobs keep running on their
    /// hosts and complete with their first attempt (docs/failures.md, "The coordinator sleeps").
    @Suite("Coordinator sleeps")
    struct CoordinatorSleepTests {
        /// A laptop's lid closed: twice the old 30 s lease, far longer than `--dead-after 3`.
        static let sleepGap: UInt32 = 60
        /// The coordinator's machine "rebooting", as the issue measured it: two minutes.
        static let rebootGap: UInt32 = 120

        /// Two jobs per host (two slots each), running until well after the gap.
        func fillEveryHost(_ f: CoordinatorFixture, gap: UInt32) throws -> [Int] {
            let ids = try (0..<6).map { i in try f.submit(["sh", "-c", "sleep \(gap + 10); echo done-\(i)"]) }
            let j = try f.journal()
            try f.waitFor("a job running on every slot", timeout: 30) { try j.jobs(ids).allSatisfy { $0.state == .running } }
            #expect(Set(try j.jobs(ids).compactMap(\.host)) == ["h1", "h2", "h3"])
            return ids
        }

        /// Every job succeeded with its first attempt, no attempt was lost or orphaned, and no
        /// host was declared suspect or down after `since` (an event id).
        func expectNothingLost(_ f: CoordinatorFixture, _ ids: [Int], since: Int) throws {
            let j = try f.journal()
            let jobs = try f.waitFinal(ids, timeout: 90)
            #expect(jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map { "\($0.id) \($0.state) \($0.reason ?? "")" })")
            for id in ids {
                let attempts = try j.attempts(of: id)
                #expect(attempts.count == 1, "job \(id) ran \(attempts.count) attempts: \(attempts.map { "\($0.host) \($0.state) \($0.reason ?? "")" })")
                #expect(!attempts.contains { $0.reason == "orphaned" || $0.state == "lost" })
            }
            let judged = try j.events(after: since).filter { $0.kind == "host" && ($0.state == "down" || $0.state == "suspect") }
            #expect(judged.isEmpty, "hosts judged for the coordinator's own silence: \(judged.map(\.message))")
        }

        @Test(.timeLimit(.minutes(4))) func aCoordinatorStoppedLongerThanTheDeadHostTimeAndTheOldLeaseWhileItsLinksDieLosesNothing() async throws {
            try await CoordinatorFixture.with(deadAfter: 3, leaseTTL: nil) { f in
                let ids = try fillEveryHost(f, gap: Self.sleepGap)
                let since = try f.journal().events().last?.id ?? 0
                kill(f.pid, SIGSTOP)
                // Its SSH sessions die at once (as a sleeping laptop's do): the heartbeats of the
                // gap never reach it, and on waking every link must reconnect first.
                for h in ["h1", "h2", "h3"] {
                    let killed = try Testbed.script("exec", h, "sh", "-c", "for p in $(pgrep -f '[d]rover-agent[^ ]* link'); do kill -9 $p && echo $p; done")
                    #expect(!killed.isEmpty, "no link process found on \(h)")
                }
                // The gap itself is what is tested: the coordinator does not run for a minute.
                sleep(Self.sleepGap)
                kill(f.pid, SIGCONT)
                try expectNothingLost(f, ids, since: since)
                let noticed = try f.journal().events(after: since).filter { $0.kind == "coordinator" && $0.message.contains("did not run for") }
                #expect(noticed.count >= 1, "the sleep is recorded as an event")
                #expect(f.log.contains("did not run for"), "the sleep is in the coordinator log")
            }
        }

        @Test(.timeLimit(.minutes(5))) func aCoordinatorKilledAndRestartedTwoMinutesLaterLosesNothing() async throws {
            try await CoordinatorFixture.with(deadAfter: 3, leaseTTL: nil) { f in
                let ids = try fillEveryHost(f, gap: Self.rebootGap)
                let since = try f.journal().events().last?.id ?? 0
                f.kill9()
                // No coordinator at all for longer than the old lease (the machine "rebooting").
                sleep(Self.rebootGap)
                try f.startAndWaitForHosts()
                try expectNothingLost(f, ids, since: since)
                #expect(try f.journal().meta("epoch") == "2")
            }
        }

        /// `drover wait` notices a coordinator killed while it waits (its flock on the lock
        /// returns) and starts it again; without that it would wait for ever.
        @Test(.timeLimit(.minutes(2))) func waitStartsTheCoordinatorAgainWhenItIsKilledDuringTheWait() async throws {
            try await CoordinatorFixture.with(deadAfter: 3, leaseTTL: nil) { f in
                let location = StateLocation(explicit: f.state)
                let id = try f.submit(["sh", "-c", "sleep 8; echo finished"])
                let j = try f.journal()
                try f.waitFor("the job to run", timeout: 30) { try j.job(id)?.state == .running }
                let out = f.state + "/../wait.out"
                let waiter = try ChildProcess.startDetached([Testbed.droverBinary, "wait", String(id), "--state", f.state], output: out)
                defer { kill(waiter, SIGKILL); var st: Int32 = 0; waitpid(waiter, &st, WNOHANG) }
                // Its watch on the coordinator is in place once it holds the lock file open.
                try f.waitFor("wait to watch the coordinator's lock", timeout: 10) {
                    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(waiter)/fd"))?.contains { fd in
                        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(waiter)/fd/\(fd)")) == location.lockPath
                    } ?? false
                }
                f.kill9()
                var status: Int32 = 0
                try f.waitFor("wait to return", timeout: 60) { waitpid(waiter, &status, WNOHANG) == waiter }
                f.adopt(location.runningCoordinator())
                let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
                #expect(status == 0, "\(text)")
                #expect(text.contains("exited while jobs were unfinished") && text.contains("starting it"), "\(text)")
                #expect(text.contains("\(id)\tsucceeded"), "\(text)")
                #expect(try j.attempts(of: id).count == 1, "the job was adopted, not re-run")
            }
        }

        @Test(.timeLimit(.minutes(2))) func psAndWaitStartACoordinatorThatWasKilledOrSayNoneRuns() async throws {
            try await CoordinatorFixture.with(deadAfter: 3, leaseTTL: nil) { f in
                let location = StateLocation(explicit: f.state)
                let id = try f.submit(["sh", "-c", "sleep 4; echo finished"])
                let j = try f.journal()
                try f.waitFor("the job to run", timeout: 30) { try j.job(id)?.state == .running }
                f.kill9()
                // The job ends on its host while no coordinator runs: the journal still says running.
                let opted = try f.droverState(["ps", "--no-start"])
                #expect(opted.status == 0)
                #expect(opted.stderr.contains("no coordinator runs for \(f.state)") && opted.stderr.contains(" ago ("), "\(opted.stderr)")
                #expect(location.runningCoordinator() == nil, "--no-start started a coordinator")
                let waited = try f.droverState(["wait", String(id)])
                // Whatever happens, the coordinator `wait` started is the fixture's to stop.
                f.adopt(location.runningCoordinator())
                #expect(waited.status == 0, "\(waited.stdout)\(waited.stderr)")
                #expect(waited.stderr.contains("starting it"), "\(waited.stderr)")
                #expect(waited.stdout.hasPrefix("\(id)\tsucceeded"))
                #expect(try j.attempts(of: id).count == 1, "the job was adopted, not re-run")
                let shown = try f.droverState(["ps"])
                #expect(shown.stdout.contains("succeeded") && !shown.stderr.contains("no coordinator"), "\(shown.stdout)\(shown.stderr)")
            }
        }
    }
}
