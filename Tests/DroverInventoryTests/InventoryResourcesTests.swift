import DroverCore
import Testing
@testable import DroverInventory

@Suite("Inventory: gpus and facts")
struct InventoryResourcesTests {
    func parse(_ text: String) throws -> Result<Inventory, InventoryError> {
        let s = try Scratch()
        return Result { () throws(InventoryError) -> Inventory in try s.loader().parse(Array(text.utf8), file: "hosts.json") }
    }

    @Test func gpusAreACountOrDevicesAndFactsMergeWithTheDefaults() throws {
        let inv = try parse("""
            {"defaults": {"facts": {"python": "python3 -V", "gp": "gp --version-short"}},
             "hosts": [{"name": "a", "gpus": 2, "facts": {"gp": "gp -q --version-short"}}, {"name": "b", "gpus": [0, "GPU-5b"]}, {"name": "c"}]}
            """).get()
        #expect(inv.hosts[0].gpus == ["0", "1"] && inv.hosts[1].gpus == ["0", "GPU-5b"] && inv.hosts[2].gpus == nil)
        #expect(inv.hosts[0].facts == ["python": "python3 -V", "gp": "gp -q --version-short"])
        #expect(inv.hosts[2].facts == ["python": "python3 -V", "gp": "gp --version-short"])
    }

    @Test func badGpusAndFactsAreRefusedNamingTheField() throws {
        let result = try parse("""
            {"hosts": [{"name": "a", "gpus": -1}, {"name": "b", "gpus": [0, 0]}, {"name": "c", "facts": {"py thon": "x", "gp": 3}}]}
            """)
        guard case .failure(.invalid(let issues)) = result else { Issue.record("\(result)"); return }
        let text = issues.map(\.description).joined(separator: "\n")
        #expect(text.contains("hosts[0].gpus") && text.contains("count from 0 to 64"), "\(text)")
        #expect(text.contains("hosts[1].gpus[1]") && text.contains("each listed once"), "\(text)")
        #expect(text.contains("fact name \"py thon\"") && text.contains("hosts[2].facts.gp"), "\(text)")
    }
}
