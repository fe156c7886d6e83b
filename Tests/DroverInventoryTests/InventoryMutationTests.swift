import DroverCore
import DroverTestSupport
import Foundation
import Testing
@testable import DroverInventory

/// Malformed inventories, made by a seeded mutation loop: each must give a clean error that
/// names the file (or be accepted), never a crash. The seed is in the message of any failure.
@Suite("Inventory: mutated input")
struct InventoryMutationTests {
    static let sample = """
        {"defaults": {"user": "dtest", "identity": "~/.ssh/id_ed25519", "slots": 2, "labels": {"os": "linux"}, "env": {"A": "1"}},
         "hosts": [{"name": "h1", "address": "10.0.0.1", "port": 2222, "labels": {"gpu": "yes"}, "root": "~/.drover"},
                   {"name": "studio", "address": "studio.local", "identity": "~/.ssh/studio_key", "connect_timeout": 5},
                   {"name": "local", "transport": "local"}]}
        """

    @Test(arguments: [11, 12, 13])
    func mutatedInventoriesGiveCleanErrors(seed: UInt64) throws {
        let scratch = try Scratch()
        let loader = scratch.loader()
        var m = ByteMutator(seed: seed)
        let base = Array(Self.sample.utf8)
        #expect((try? loader.parse(base, file: "hosts.json")) != nil, "the sample itself is valid")
        var rejected = 0
        for i in 0..<1500 {
            do {
                let inventory = try loader.parse(m.mutate(base), file: "hosts.json")
                #expect(!inventory.hosts.isEmpty, "seed \(seed) input \(i)")
            } catch {
                rejected += 1
                #expect(error.description.contains("hosts.json"), "seed \(seed) input \(i): \(error)")
            }
        }
        #expect(rejected > 0, "seed \(seed): the mutations never broke the file")
    }
}
