#if os(Linux)
import DroverCore
import Glibc

/// Linux: `/proc/loadavg` and `MemAvailable`/`MemTotal` of `/proc/meminfo`.
struct LinuxLoadSampler: LoadSampler {
    func sample() -> HostLoad {
        var load = HostLoad()
        if let bytes = try? LocalFile.read("/proc/loadavg") {
            let fields = String(decoding: bytes, as: UTF8.self).split(separator: " ").prefix(3).map { Double($0) }
            if fields.count == 3, let a = fields[0], let b = fields[1], let c = fields[2] {
                (load.load1, load.load5, load.load15) = (a, b, c)
            }
        }
        if let bytes = try? LocalFile.read("/proc/meminfo") {
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
                let parts = line.split(separator: " ")
                guard parts.count >= 2, let kb = UInt64(parts[1]) else { continue }
                if parts[0] == "MemAvailable:" { load.memoryAvailableBytes = kb * 1024 }
                if parts[0] == "MemTotal:" { load.memoryTotalBytes = kb * 1024 }
            }
        }
        return load
    }
}
#endif
