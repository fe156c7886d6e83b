import DroverCore
import Foundation

/// The coordinator's state directory (its journal, log and checkpoint store) is a small tmpfs
/// mounted on this machine, so the soak can fill the coordinator's disk (the `journal-full`
/// fault) without touching the real one.
struct JournalDisk {
    let path: String
    let megabytes = 256
    static let filler = ".soak-filler"

    /// Mounts the tmpfs on `path` (an empty folder), mode 0700.
    func mount() throws {
        let r = try? ChildProcess.run(["/bin/mount", "-t", "tmpfs", "-o", "size=\(megabytes)m,mode=0700", "drover-soak-state", path], timeout: 30)
        if r?.status != 0 { throw SoakFailure("cannot mount a tmpfs on \(path): \(r?.stderrText.trimmingCharacters(in: .whitespacesAndNewlines) ?? "mount did not run")") }
    }

    /// Unmounts it (its contents go with it); lazily when a file on it is still open (the
    /// soak's own journal connection, closed when it exits).
    func unmount() {
        let r = try? ChildProcess.run(["/bin/umount", path], timeout: 30)
        if r?.status != 0 { _ = try? ChildProcess.run(["/bin/umount", "-l", path], timeout: 30) }
    }

    /// Writes a filler file until the tmpfs is full; returns the KiB written and the KiB left free.
    func fill() -> (filled: Int, free: Int) {
        let file = path + "/" + Self.filler
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return (0, free) }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 1 << 16)
        var written = 0
        while true {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            written += n
        }
        // Small writes after the big ones take the last partial pages too.
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, 512) }) > 0 { written += 512 }
        return (written / 1024, free)
    }

    /// KiB free on it.
    var free: Int {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return -1 }
        return Int(s.f_bavail) * Int(s.f_frsize) / 1024
    }

    /// Deletes the filler.
    func drain() {
        unlink(path + "/" + Self.filler)
    }
}
