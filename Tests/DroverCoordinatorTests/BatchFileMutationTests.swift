import DroverCore
import DroverTestSupport
import Foundation
import Testing
@testable import DroverCoordinator

/// Malformed batch files, made by a seeded mutation loop: each must give a clean error
/// naming the file (or be accepted), never a crash. The seed is in the message of any failure.
@Suite("Batch files: mutated input")
struct BatchFileMutationTests {
    static let sample = """
        {"batch": "m", "policy": "fail-fast", "defaults": {"timeout": "2m", "env": {"A": "1"}, "retry": {"max_attempts": 3, "on": ["non_zero", 75]}},
         "jobs": [{"id": "a", "argv": ["echo", "x"], "outputs": ["out/*.txt"]},
                  {"id": "b", "shell": "true", "after": ["a", {"job": "a", "condition": "any"}], "slots": 2, "memory": "1G"},
                  {"id": "c", "approval": true, "after": ["b:failed"], "timeout": 60},
                  {"id": "d", "argv": ["true"], "inputs": [{"from": "a", "path": "out/*.txt"}], "after": ["a"], "on": {"gpu": "yes"}}]}
        """

    @Test(arguments: [1, 2, 3, 4])
    func mutatedFilesGiveCleanErrors(seed: UInt64) {
        var m = ByteMutator(seed: seed)
        let base = Array(Self.sample.utf8)
        var accepted = 0
        for i in 0..<1500 {
            let input = m.mutate(base)
            do {
                let spec = try BatchReader.parse(input, file: "m.json", baseDirectory: "/nonexistent")
                accepted += 1
                // Whatever is accepted is safe to use as folder names and relative paths.
                #expect(BatchNames.isValid(spec.name), "seed \(seed) input \(i)")
                for j in spec.jobs {
                    #expect(BatchNames.isValid(j.id), "seed \(seed) input \(i): job id \(j.id)")
                    #expect((j.request.outputs ?? []).allSatisfy(LocalFile.staysInside), "seed \(seed) input \(i)")
                }
                #expect((try? BatchGraph.order(spec.jobs)) != nil, "seed \(seed) input \(i): an accepted batch has no cycle")
            } catch {
                #expect(!error.issues.isEmpty && error.issues.allSatisfy { $0.file == "m.json" }, "seed \(seed) input \(i): \(error)")
            }
        }
        #expect(accepted < 1500, "seed \(seed): the mutations never broke the file")
    }

    @Test func pathTraversalIsRefusedEverywhereAPathOrNameGoes() {
        let attempts = [
            #"{"batch": "../escape", "jobs": [{"id": "a", "argv": ["true"]}]}"#,
            #"{"jobs": [{"id": "../../etc", "argv": ["true"]}]}"#,
            #"{"jobs": [{"id": "a/b", "argv": ["true"]}]}"#,
            #"{"jobs": [{"id": "a", "argv": ["true"], "outputs": ["../../.ssh/authorized_keys"]}]}"#,
            #"{"jobs": [{"id": "a", "argv": ["true"], "outputs": ["/etc/passwd"]}]}"#,
            #"{"jobs": [{"id": "a", "argv": ["true"], "outputs": ["ok\u0000/../x"]}]}"#,
            #"{"jobs": [{"id": "a", "argv": ["true"], "inputs": [{"path": "x", "as": "../x"}]}]}"#,
            #"{"jobs": [{"id": "a", "argv": ["true"]}, {"id": "b", "after": ["a"], "argv": ["true"], "inputs": [{"from": "a", "path": "../../secret"}]}]}"#,
            #"{"jobs": [{"id": "a", "argv": ["a\u0000b"]}]}"#,
        ]
        for text in attempts {
            #expect(throws: BatchFileError.self, "\(text)") { try BatchReader.parse(Array(text.utf8), file: "t.json", baseDirectory: "/tmp") }
        }
    }
}
