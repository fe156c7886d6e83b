import DroverCore
import DroverTestSupport
import Testing
@testable import DroverAgent

@Suite("Attempt specs: inputs and mutated input")
struct SpecInputTests {
    let sha = String(repeating: "ab", count: 32)

    func parse(_ text: String) -> Result<AttemptSpec, SpecError> {
        guard let node = try? JSONParser.parse(text) else { return .failure(SpecError("not JSON", file: "spec.json")) }
        return AttemptSpec.parse(node, file: "spec.json")
    }

    @Test func inputsMustStayInsideTheWorkingDirectoryAndNameAStoredFile() throws {
        let ok = try parse(#"{"job":"j","attempt":1,"argv":["true"],"workdir":true,"inputs":[{"path":"data/a.csv","sha256":"\#(sha)"}]}"#).get()
        #expect(ok.workdir && ok.inputs == [InputLink(path: "data/a.csv", sha256: sha)])
        for bad in ["../x", "a/../../x", "/etc/passwd", "", "a\\u0000b"] {
            let r = parse(#"{"job":"j","attempt":1,"argv":["true"],"inputs":[{"path":"\#(bad)","sha256":"\#(sha)"}]}"#)
            #expect((try? r.get()) == nil, "input path \(bad) was accepted")
        }
        for badHash in ["../../etc/shadow", "ABCD", String(repeating: "g", count: 64)] {
            let r = parse(#"{"job":"j","attempt":1,"argv":["true"],"inputs":[{"path":"a","sha256":"\#(badHash)"}]}"#)
            #expect((try? r.get()) == nil, "hash \(badHash) was accepted")
        }
    }

    @Test(arguments: [21, 22])
    func mutatedSpecsAreRefusedCleanly(seed: UInt64) {
        var m = ByteMutator(seed: seed)
        let base = Array(#"{"job":"j-1","attempt":2,"argv":["sh","-c","echo"],"env":{"A":"1"},"timeout":5,"limits":{"memory_bytes":1000},"workdir":true,"inputs":[{"path":"a/b","sha256":"\#(sha)"}]}"#.utf8)
        for i in 0..<1500 {
            guard let node = try? JSONParser.parse(m.mutate(base)) else { continue }
            switch AttemptSpec.parse(node, file: "spec.json") {
            case .success(let spec):
                #expect(AttemptID.isValidJob(spec.id.job) && spec.inputs.allSatisfy { LocalFile.staysInside($0.path) }, "seed \(seed) input \(i)")
            case .failure(let e):
                #expect(!e.issues.isEmpty, "seed \(seed) input \(i)")
            }
        }
    }
}
