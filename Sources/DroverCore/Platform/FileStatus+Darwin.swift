#if canImport(Darwin)
import Darwin

extension FileStatus {
    /// Darwin names the modification time `st_mtimespec`.
    static func modificationTime(_ st: stat) -> Double {
        Double(st.st_mtimespec.tv_sec) + Double(st.st_mtimespec.tv_nsec) / 1e9
    }
}
#endif
