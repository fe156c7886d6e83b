import CDroverSys

/// The allocator's memory: handing free memory back after a large transient peak, and how
/// much is in use.
public enum FreeMemory {
    /// Returns the allocator's free pages to the system (glibc keeps freed memory for reuse,
    /// so a process's resident size stays at its highest peak otherwise); true when some were
    /// released. A no-op where the allocator has no such call.
    @discardableResult
    public static func release() -> Bool { drover_release_free_memory() == 1 }

    /// Bytes allocated and not freed (the live heap), nil where the allocator cannot tell:
    /// what a leak grows, unlike the resident size, which also holds what the allocator keeps.
    public static func heapInUse() -> Int? {
        let n = drover_heap_in_use()
        return n >= 0 ? Int(n) : nil
    }
}
