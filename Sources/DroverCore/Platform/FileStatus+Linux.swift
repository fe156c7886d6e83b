#if os(Linux)
import Glibc

extension FileStatus {
    /// Linux names the modification time `st_mtim`.
    static func modificationTime(_ st: stat) -> Double {
        Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
    }
}
#endif
