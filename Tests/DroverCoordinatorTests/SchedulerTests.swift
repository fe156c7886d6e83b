import Testing
@testable import DroverCoordinator

@Suite("Scheduler.place")
struct SchedulerTests {
    /// The placements as job → host, for order-free comparisons.
    func map(_ placements: [Scheduler.Placement]) -> [Int: String] {
        Dictionary(uniqueKeysWithValues: placements.map { ($0.job, $0.host) })
    }

    @Test func idleHostsFillFirst() {
        let hosts = ["a", "b", "c"].map { SchedulerHost(name: $0, slots: 2, used: 0) }
        let placed = Scheduler.place([1, 2, 3].map { SchedulerJob(id: $0) }, on: hosts)
        #expect(placed.count == 3)
        // One job per host, not two on the first one.
        #expect(Set(placed.map(\.host)) == ["a", "b", "c"])
    }

    @Test func aSetOfHostsKeepsJobsOnThoseHostsOnly() {
        // `drover map -S a,c`: six jobs on three idle hosts go to a and c, never to b, even
        // though b is the emptiest once a and c are busy; full, they wait rather than use b.
        let hosts = ["a", "b", "c"].map { SchedulerHost(name: $0, slots: 2, used: 0) }
        let jobs = (1...6).map { SchedulerJob(id: $0, hosts: ["a", "c"]) }
        let placed = Scheduler.place(jobs, on: hosts)
        #expect(placed.count == 4)
        #expect(Set(placed.map(\.host)) == ["a", "c"])
        #expect(jobs[0].misfit(hosts[1]) == "not one of the hosts asked for (a,c)")
        #expect(jobs[0].fits(hosts[2]))
    }

    @Test func theLeastLoadedHostWinsByFreeShare() {
        // a is three quarters busy, b half, c idle: the first job goes to c; then b and c tie
        // at a half free, and b has more free slots.
        let hosts = [SchedulerHost(name: "a", slots: 4, used: 3), SchedulerHost(name: "b", slots: 4, used: 2), SchedulerHost(name: "c", slots: 2, used: 0)]
        let placed = Scheduler.place([SchedulerJob(id: 1), SchedulerJob(id: 2)], on: hosts)
        #expect(placed == [.init(job: 1, host: "c"), .init(job: 2, host: "b")])
    }

    @Test func queueOrderDecidesWhoGetsTheLastSlots() {
        // Two free slots in all, four jobs: the first two of the input (the journal hands them
        // over by priority, then age) are placed, in that order.
        let hosts = [SchedulerHost(name: "a", slots: 1, used: 0), SchedulerHost(name: "b", slots: 2, used: 1)]
        let jobs = [7, 3, 9, 1].map { SchedulerJob(id: $0) }
        let placed = Scheduler.place(jobs, on: hosts)
        #expect(placed.map(\.job) == [7, 3])
        #expect(Set(placed.map(\.host)) == ["a", "b"])
    }

    @Test func multiSlotJobsTakeTheirSlots() {
        let hosts = [SchedulerHost(name: "big", slots: 4, used: 0), SchedulerHost(name: "small", slots: 2, used: 0)]
        // 3 slots fit only on big; then 2 fit only on small (big has 1 left); then 1 goes to big.
        let jobs = [SchedulerJob(id: 1, slots: 3), SchedulerJob(id: 2, slots: 2), SchedulerJob(id: 3, slots: 1), SchedulerJob(id: 4, slots: 1)]
        let placed = Scheduler.place(jobs, on: hosts)
        #expect(map(placed) == [1: "big", 2: "small", 3: "big"])
    }

    @Test func hostConstraint() {
        let hosts = ["a", "b", "c"].map { SchedulerHost(name: $0, slots: 2, used: $0 == "b" ? 1 : 0) }
        let placed = Scheduler.place([SchedulerJob(id: 1, host: "b"), SchedulerJob(id: 2, host: "b")], on: hosts)
        // Both ask for b: the first takes its last slot, the second waits although a and c are idle.
        #expect(placed == [.init(job: 1, host: "b")])
    }

    @Test func labelConstraint() {
        let hosts = [SchedulerHost(name: "a", slots: 2, used: 0, labels: ["gpu": "no"]),
                     SchedulerHost(name: "b", slots: 2, used: 1, labels: ["gpu": "yes", "os": "linux"]),
                     SchedulerHost(name: "c", slots: 2, used: 0)]
        let placed = Scheduler.place([SchedulerJob(id: 1, labels: ["gpu": "yes"]),
                                      SchedulerJob(id: 2, labels: ["gpu": "yes", "os": "linux"]),
                                      SchedulerJob(id: 3, labels: ["os": "mac"])], on: hosts)
        // All labels must match; b has one free slot, so job 2 waits; nothing has os=mac.
        #expect(placed == [.init(job: 1, host: "b")])
        #expect(SchedulerJob(id: 0, labels: ["gpu": "yes", "os": "linux"]).fits(hosts[1]))
        #expect(!SchedulerJob(id: 0, labels: ["gpu": "yes"]).fits(hosts[2]))
    }

    @Test func aJobThatFitsNowhereDoesNotBlockOthers() {
        let hosts = [SchedulerHost(name: "a", slots: 2, used: 0), SchedulerHost(name: "b", slots: 2, used: 0)]
        let jobs = [SchedulerJob(id: 1, labels: ["gpu": "yes"]),  // no host has the label
                    SchedulerJob(id: 2, slots: 8),                 // larger than any host
                    SchedulerJob(id: 3, host: "gone"),             // a host that is not there
                    SchedulerJob(id: 4), SchedulerJob(id: 5)]
        let placed = Scheduler.place(jobs, on: hosts)
        #expect(map(placed) == [4: "a", 5: "b"])
    }

    @Test func aJobWaitingForItsHostDoesNotBlockOtherHosts() {
        // Job 1 wants the full host a; it reserves a (only), so job 2 still starts on b.
        let hosts = [SchedulerHost(name: "a", slots: 1, used: 1), SchedulerHost(name: "b", slots: 1, used: 0)]
        let placed = Scheduler.place([SchedulerJob(id: 1, host: "a"), SchedulerJob(id: 2)], on: hosts)
        #expect(placed == [.init(job: 2, host: "b")])
    }

    @Test func aBigJobAtTheHeadReservesTheHostWithTheMostFreeSlots() {
        // a has 1 of 2 slots free, b none. The 2-slot job cannot start; it reserves a, so the
        // 1-slot job behind it does not take a's free slot (which would starve the big job).
        let hosts = [SchedulerHost(name: "a", slots: 2, used: 1), SchedulerHost(name: "b", slots: 2, used: 2)]
        let placed = Scheduler.place([SchedulerJob(id: 1, slots: 2), SchedulerJob(id: 2, slots: 1)], on: hosts)
        #expect(placed.isEmpty)
        // Without the big job the small one would have gone to a.
        #expect(Scheduler.place([SchedulerJob(id: 2, slots: 1)], on: hosts) == [.init(job: 2, host: "a")])
    }

    @Test func aReservationSendsSmallJobsElsewhere() {
        // a has 2 of 4 free (the better share), b 1 of 4. The 3-slot job fits neither now and
        // reserves a; the small job goes to b, not to a as it would without the reservation.
        let hosts = [SchedulerHost(name: "a", slots: 4, used: 2), SchedulerHost(name: "b", slots: 4, used: 3)]
        #expect(Scheduler.place([SchedulerJob(id: 2)], on: hosts) == [.init(job: 2, host: "a")])
        let placed = Scheduler.place([SchedulerJob(id: 1, slots: 3), SchedulerJob(id: 2), SchedulerJob(id: 3)], on: hosts)
        #expect(placed == [.init(job: 2, host: "b")])
    }

    @Test func unusableHostsAreIgnored() {
        let hosts = [SchedulerHost(name: "a", slots: 4, used: 0, usable: false), SchedulerHost(name: "b", slots: 2, used: 1)]
        let placed = Scheduler.place([SchedulerJob(id: 1), SchedulerJob(id: 2), SchedulerJob(id: 3, host: "a")], on: hosts)
        // a is idle but not usable (down, suspect, reconciling): only b's one free slot is used;
        // the job pinned to a waits.
        #expect(placed == [.init(job: 1, host: "b")])
        #expect(Scheduler.place([SchedulerJob(id: 1)], on: hosts.map { var h = $0; h.usable = false; return h }).isEmpty)
        #expect(Scheduler.place([SchedulerJob(id: 1)], on: []).isEmpty)
    }

    @Test func anOverbookedHostHasNoFreeSlots() {
        // After a host reports fewer CPUs than it had, used can exceed slots: free is 0, not negative.
        let h = SchedulerHost(name: "a", slots: 2, used: 5)
        #expect(h.free == 0)
        #expect(Scheduler.place([SchedulerJob(id: 1)], on: [h, SchedulerHost(name: "b", slots: 1, used: 0)]) == [.init(job: 1, host: "b")])
    }

    @Test func aPreferredHostWinsWhenItHasRoomOnly() {
        // a is the busier host: by free share the job would go to b, but it prefers a.
        let hosts = [SchedulerHost(name: "a", slots: 4, used: 2), SchedulerHost(name: "b", slots: 4, used: 0)]
        #expect(Scheduler.place([SchedulerJob(id: 1)], on: hosts) == [.init(job: 1, host: "b")])
        #expect(Scheduler.place([SchedulerJob(id: 1, prefer: "a")], on: hosts) == [.init(job: 1, host: "a")])
        // A full preferred host does not hold the job back.
        let full = [SchedulerHost(name: "a", slots: 2, used: 2), SchedulerHost(name: "b", slots: 4, used: 0)]
        #expect(Scheduler.place([SchedulerJob(id: 1, prefer: "a")], on: full) == [.init(job: 1, host: "b")])
    }
}
