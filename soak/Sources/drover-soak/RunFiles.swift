/// The per-run files in each host's home (`/home/dtest`, on the host's own disk, never the
/// tmpfs): the evidence of successful attempts, the progress log of `checkpointed` jobs, and
/// the small tool the other succeeding kinds run first (taken away by the black-hole fault).
struct RunFiles {
    let evidence: String
    let progress: String
    let tool: String
    static let home = "/home/dtest"

    init(tag: String) {
        evidence = "soak-evidence-\(tag).log"
        progress = "soak-progress-\(tag).log"
        tool = "soak-tool-\(tag)"
    }

    /// Where the black-hole fault keeps the tool while it is away (a name no job calls).
    var toolAway: String { tool + ".away" }

    /// Installs the tool (`exit 0`, owned by dtest, 0755) on every host.
    func install(_ testbed: Testbed) throws {
        for h in testbed.hosts {
            try testbed.shell(h, #"set -e; f="/home/dtest/$1"; rm -f "$f.away"; printf '#!/bin/sh\nexit 0\n' > "$f"; chown dtest: "$f"; chmod 0755 "$f""#, tool)
        }
    }

    /// Takes the tool away on `host`; returns whether it was there.
    func removeTool(on host: String, _ testbed: Testbed) throws -> Bool {
        let out = try testbed.shell(host, #"cd /home/dtest && if [ -e "$1" ]; then mv -f "$1" "$1.away" && echo moved; else echo absent; fi"#, tool)
        return out.contains("moved")
    }

    /// Puts the tool back on `host`.
    func restoreTool(on host: String, _ testbed: Testbed) throws {
        try testbed.shell(host, #"cd /home/dtest && if [ -e "$1.away" ]; then mv -f "$1.away" "$1"; fi; test -x "$1""#, tool)
    }

    /// Removes every per-run file from `host`.
    func remove(on host: String, _ testbed: Testbed) throws {
        try testbed.shell(host, #"cd /home/dtest && rm -f "$1" "$2" "$3" "$3.away""#, evidence, progress, tool)
    }
}
