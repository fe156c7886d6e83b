#if os(macOS)
import Darwin
import DroverCore

/// macOS: `getloadavg`, `hw.memsize`, and free plus inactive (reclaimable) pages from
/// `host_statistics64` as the memory available (what Activity Monitor calls not in use).
///
/// Written against the macOS SDK; Linux CI cannot compile it.
struct DarwinLoadSampler: LoadSampler {
    func sample() -> HostLoad {
        var load = HostLoad()
        var l = [Double](repeating: 0, count: 3)
        if getloadavg(&l, 3) == 3 { (load.load1, load.load5, load.load15) = (l[0], l[1], l[2]) }
        var total: UInt64 = 0
        var size = MemoryLayout<UInt64>.size
        if sysctlbyname("hw.memsize", &total, &size, nil, 0) == 0 { load.memoryTotalBytes = total }
        var stats = vm_statistics64()
        var count = mach_msg_type_number_t(MemoryLayout<vm_statistics64>.stride / MemoryLayout<integer_t>.stride)
        let status = withUnsafeMutablePointer(to: &stats) { p in
            p.withMemoryRebound(to: integer_t.self, capacity: Int(count)) { host_statistics64(mach_host_self(), HOST_VM_INFO64, $0, &count) }
        }
        var pageSize: vm_size_t = 0
        if status == KERN_SUCCESS, host_page_size(mach_host_self(), &pageSize) == KERN_SUCCESS {
            load.memoryAvailableBytes = (UInt64(stats.free_count) + UInt64(stats.inactive_count)) * UInt64(pageSize)
        }
        return load
    }
}
#endif
