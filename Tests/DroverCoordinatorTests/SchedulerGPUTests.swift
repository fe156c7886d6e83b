import DroverCore
import Testing
@testable import DroverCoordinator

@Suite("Scheduler: GPUs and host facts")
struct SchedulerGPUTests {
    @Test func gpusAreCountedLikeSlots() {
        let hosts = [SchedulerHost(name: "gpu", slots: 8, used: 0, gpus: 2), SchedulerHost(name: "cpu", slots: 8, used: 0)]
        let jobs = (1...3).map { SchedulerJob(id: $0, gpus: 1) } + [SchedulerJob(id: 4)]
        let placed = Scheduler.place(jobs, on: hosts)
        // Two GPU jobs on the 2-GPU host, the third waits (and holds the host), the CPU job goes elsewhere.
        #expect(placed.filter { $0.host == "gpu" }.map(\.job) == [1, 2])
        #expect(!placed.contains { $0.job == 3 })
        #expect(placed.contains { $0.job == 4 && $0.host == "cpu" })
        var busy = hosts
        busy[0].gpusUsed = 2
        #expect(Scheduler.place([SchedulerJob(id: 5, gpus: 1)], on: busy).isEmpty)
    }

    @Test func misfitSaysWhyAHostCannotTakeAJob() throws {
        let old = SchedulerHost(name: "h3", slots: 4, used: 0, labels: ["python": "Python 3.9.2"], gpus: 1)
        let new = SchedulerHost(name: "h1", slots: 4, used: 0, labels: ["python": "Python 3.11.2"])
        let needs = SchedulerJob(id: 1, requirements: [try FactRequirement.parse("python>=3.11").get()])
        #expect(needs.misfit(old) == "python is 3.9.2, needs >=3.11" && needs.fits(new))
        #expect(SchedulerJob(id: 2, gpus: 2).misfit(old) == "has 1 GPU(s), needs 2")
        #expect(Scheduler.place([needs], on: [old, new]).map(\.host) == ["h1"])
    }
}
