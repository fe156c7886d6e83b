import Testing
@testable import DroverCore

@Suite("Host facts and requirements")
struct FactRequirementTests {
    @Test func versionsAreFoundInWhatCommandsPrint() {
        #expect(HostFacts.version(in: "Python 3.11.2") == [3, 11, 2])
        #expect(HostFacts.version(in: "11.9") == [11, 9])
        #expect(HostFacts.version(in: "GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)") == [5, 2, 15])
        #expect(HostFacts.version(in: "GP/PARI CALCULATOR Version 2.15.2 (released)") == [2, 15, 2])
        #expect(HostFacts.version(in: "no digits") == nil)
        #expect(HostFacts.compare([3, 11], [3, 11, 0]) == 0 && HostFacts.compare([3, 9, 2], [3, 11]) == -1)
    }

    @Test func requirementsCompareVersionsEqualityAndPresence() throws {
        let facts = ["python": "Python 3.9.2", "os": "Debian GNU/Linux 11 (bullseye)"]
        #expect(try FactRequirement.parse("python>=3.11").get().problem(with: facts) == "python is 3.9.2, needs >=3.11")
        #expect(try FactRequirement.parse("python>=3.9").get().problem(with: facts) == nil)
        #expect(try FactRequirement.parse("python<3.10").get().problem(with: facts) == nil)
        #expect(try FactRequirement.parse("python=3.9.2").get().problem(with: facts) == nil)
        #expect(try FactRequirement.parse("python==3.9").get().problem(with: facts) != nil)
        #expect(try FactRequirement.parse("python != 3.9.2").get().problem(with: facts) != nil)
        #expect(try FactRequirement.parse("python").get().problem(with: facts) == nil)
        #expect(try FactRequirement.parse("gp").get().problem(with: facts) == "has no fact gp")
        #expect(try FactRequirement.parse(fact: "os", "*").get().problem(with: facts) == nil)
    }

    @Test func malformedRequirementsSayWhatToWrite() {
        guard case .failure(let e) = FactRequirement.parse("python>=new") else { Issue.record("accepted"); return }
        #expect(e.description.contains("needs a version"))
        guard case .failure(let f) = FactRequirement.parse(fact: "python", "~3") else { Issue.record("accepted"); return }
        #expect(f.description.contains(">=3.11"))
        guard case .failure = FactRequirement.parse("py thon>=3") else { Issue.record("accepted a bad name"); return }
    }
}
