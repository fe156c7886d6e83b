import CDroverSys

/// The allocator's free memory, handed back to the system after a large transient peak.
public enum FreeMemory {
    /// Returns the allocator's free pages to the system (glibc keeps freed memory for reuse,
    /// so a process's resident size stays at its highest peak otherwise); true when some were
    /// released. A no-op where the allocator has no such call.
    @discardableResult
    public static func release() -> Bool { drover_release_free_memory() == 1 }
}
