import DroverCore
import Foundation

/// A small tmpfs inside one host's mount namespace that serves as that host's agent root,
/// so the soak can fill "the disk" without touching this machine's real disk (each host's
/// root filesystem is an overlay whose upper layer is a folder on it; docs/testbed.md).
///
/// The mount point is a folder owned by root (0755) in the host's home: while the tmpfs is
/// not mounted (after a power-off, which drops the host's mount namespace and the tmpfs
/// with it), the agent cannot use it, so no agent state ever lands on the real disk.
struct ScratchDisk {
    let testbed: Testbed
    let host: String
    /// The agent root as the host sees it.
    let path = "/home/dtest/soak-root"
    let megabytes = 128
    let owner: (uid: String, gid: String)

    init(testbed: Testbed, host: String) throws {
        self.testbed = testbed
        self.host = host
        // dtest exists only inside the hosts (in their own /etc/passwd), not on this machine.
        let ids = (try? testbed.shell(host, "id -u dtest && id -g dtest"))?.split(separator: "\n").map(String.init) ?? []
        guard ids.count == 2, ids.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) else {
            throw SoakFailure("the testbed user dtest does not exist on \(host) (is the testbed up? scripts/testbed status)")
        }
        owner = (ids[0], ids[1])
    }

    /// Mounts the tmpfs (after each power-on too); a no-op when it is mounted.
    func mount() throws {
        try testbed.shell(host, """
            set -e
            mountpoint -q "$1" && exit 0
            mkdir -p "$1"; chown root:root "$1"; chmod 0755 "$1"
            mount -t tmpfs -o "size=$2m,mode=0700,uid=$3,gid=$4" drover-soak "$1"
            """, path, String(megabytes), owner.uid, owner.gid)
    }

    /// Writes a filler file until the tmpfs is full; returns the KiB written and the KiB left free.
    func fill() throws -> (filled: Int, free: Int) {
        let out = try testbed.shell(host, #"dd if=/dev/zero of="$1/.soak-filler" bs=64k status=none 2>/dev/null; echo "$(du -k "$1/.soak-filler" | cut -f1) $(df -k --output=avail "$1" | tail -1)""#, path)
        let n = out.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        return n.count == 2 ? (n[0], n[1]) : (0, -1)
    }

    /// Deletes the filler.
    func drain() throws {
        try testbed.shell(host, #"rm -f "$1/.soak-filler""#, path)
    }

    /// Kills any agent process still using the tmpfs (a previous run that did not stop it),
    /// unmounts it and removes the mount point. A lazily unmounted tmpfs with an agent still
    /// running from it would be wrong twice: the agent's path-based writes would land in the
    /// next run's tmpfs, next to another agent.
    func unmount() {
        _ = try? testbed.shell(host, #"pkill -9 -f "[d]rover-agent.*$1" || true; if mountpoint -q "$1"; then umount "$1" || umount -l "$1"; fi; rmdir "$1" 2>/dev/null || true"#, path)
    }
}
