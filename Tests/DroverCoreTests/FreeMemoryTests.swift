import DroverCore
import Testing

/// The live-heap figure the coordinator records for soaks (`coordinator.heap`).
@Suite struct FreeMemoryTests {
    @Test func theHeapInUseRisesWithAnAllocationAndFallsWhenItIsFreed() throws {
        let before = try #require(FreeMemory.heapInUse(), "this platform's allocator reports no figure")
        let size = 16 << 20
        let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        block.initializeMemory(as: UInt8.self, repeating: 1, count: size)
        let during = try #require(FreeMemory.heapInUse())
        block.deallocate()
        let after = try #require(FreeMemory.heapInUse())
        // Other threads of the test runner allocate too: allow them a few MiB either way.
        #expect(during - before >= size - (4 << 20), "16 MiB allocated, the figure rose by \(during - before) bytes")
        #expect(during - after >= size - (4 << 20), "16 MiB freed, the figure fell by \(during - after) bytes")
    }
}
