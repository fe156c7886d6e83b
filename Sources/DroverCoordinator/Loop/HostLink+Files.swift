import DroverCore
import DroverSSH
import Foundation

extension HostLink {
    // MARK: Inputs

    /// Makes sure every input file of `batch` is in the host's store (`ROOT/files/<sha256>`,
    /// uploaded once per host, checked by hash), and returns the lines that may now be sent.
    /// Starts whose files cannot be staged are reported to the coordinator and dropped.
    func stage(_ batch: [Outgoing], session: any HostSession) async -> [String] {
        let known = state.withLock { $0.stored }
        var needed: [String: StagedFile] = [:]
        for item in batch { for f in item.files where !known.contains(f.sha256) { needed[f.sha256] = f } }
        var failed: [String: String] = [:]
        if !needed.isEmpty {
            do throws(SSHError) {
                failed = try await upload(Array(needed.values), session: session)
            } catch {
                log("\(spec.name): staging \(needed.count) input file(s) failed: \(error); retrying")
                requeue(batch, for: session)
                return []
            }
        }
        var lines: [String] = []
        for item in batch {
            if let f = item.files.first(where: { failed[$0.sha256] != nil }) {
                await delegate.stagingFailed(spec.name, job: item.job, attempt: item.attempt, error: "\(f.path): \(failed[f.sha256]!)")
                delegate.workArrived()
            } else {
                lines.append(item.line)
            }
        }
        return lines
    }

    /// Uploads the files the store lacks; returns the hashes that could not be staged, with why.
    private func upload(_ files: [StagedFile], session: any HostSession) async throws(SSHError) -> [String: String] {
        let q = RemotePath.shell
        let store = spec.root + "/files"
        var failed: [String: String] = [:]
        let valid = files.filter { f in
            let ok = SHA256.isHexDigest(f.sha256)
            if !ok { failed[f.sha256] = "no content hash recorded for \(f.localPath)" }
            return ok
        }
        let hashes = valid.map(\.sha256)
        let probe = try await session.run("umask 077 && mkdir -p \(q(store)) && cd \(q(store)) && for h in \(hashes.joined(separator: " ")); do [ -e \"$h\" ] || echo \"$h\"; done", timeout: 30)
        guard probe.status == .exited(0) else {
            throw SSHError(.channelFailed, host: spec.name, operation: "look into \(store)", message: probe.stderrText)
        }
        let missing = Set(probe.stdoutText.split(separator: "\n").map(String.init))
        var uploaded: [StagedFile] = []
        var bytes = 0
        for f in valid where missing.contains(f.sha256) {
            guard LocalFile.isReadableFile(f.localPath) else {
                failed[f.sha256] = "\(f.localPath) is gone or unreadable"
                continue
            }
            try await session.upload(file: f.localPath, to: "\(store)/.upload-\(f.sha256)", mode: 0o400)
            uploaded.append(f)
            bytes += LocalFile.size(f.localPath) ?? 0
        }
        if !uploaded.isEmpty {
            // Keep only what hashes right: a file changed since submission is refused, never run.
            let script = uploaded.map { f in
                let tmp = q("\(store)/.upload-\(f.sha256)")
                return "s=$( (sha256sum \(tmp) 2>/dev/null || shasum -a 256 \(tmp)) | cut -d' ' -f1); if [ \"$s\" = \(f.sha256) ]; then mv -f -- \(tmp) \(q("\(store)/\(f.sha256)")); else rm -f -- \(tmp); echo \(f.sha256); fi"
            }.joined(separator: "; ")
            let check = try await session.run(script, timeout: 300)
            let bad = Set(check.stdoutText.split(separator: "\n").map(String.init))
            for f in uploaded where bad.contains(f.sha256) { failed[f.sha256] = "\(f.localPath) changed since the batch was submitted (its SHA-256 differs); submit the batch again" }
            await delegate.staged(spec.name, files: uploaded.filter { !bad.contains($0.sha256) }, bytes: bytes)
        }
        let good = Set(valid.map(\.sha256)).subtracting(failed.keys)
        state.withLock { $0.stored.formUnion(good) }
        return failed
    }

    // MARK: Results

    func collectLoop() async {
        for await _ in collectWakes {
            await pullCheckpoints()
            while true {
                let (session, group) = state.withLock { s -> ((any HostSession)?, [Collection]) in
                    guard let session = s.session, s.agentPath != nil, !s.collections.isEmpty else { return (nil, []) }
                    let group = Array(s.collections.prefix(Self.collectGroup))
                    s.collections.removeFirst(group.count)
                    return (session, group)
                }
                guard let session, !group.isEmpty else { break }
                let outcomes = await fetch(group, session: session)
                for (c, outcome) in zip(group, outcomes) {
                    await delegate.collected(spec.name, job: c.job, attempt: c.attempt, outcome: outcome)
                }
                delegate.workArrived()
            }
        }
    }

    /// Ended attempts whose results are fetched together: one listing for the group, then
    /// downloads of what is not empty (trivial jobs cost one round trip per group, not three each).
    static let collectGroup = 64

    /// Fetches a group of ended attempts' results; one outcome per collection, in order.
    private func fetch(_ group: [Collection], session: any HostSession) async -> [CollectOutcome] {
        let q = RemotePath.shell
        let dirs = group.map { q($0.attemptDirectory) }.joined(separator: " ")
        let listing: ExecResult
        do throws(SSHError) {
            listing = try await session.run("i=0; for d in \(dirs); do for f in stdout stderr; do [ -f \"$d/$f\" ] && echo \"$i $f $(wc -c <\"$d/$f\")\"; done; i=$((i+1)); done; true", timeout: 60)
        } catch {
            return group.map { _ in .failed(error.description) }
        }
        var sizes: [Int: [(String, Int)]] = [:]
        for line in listing.stdoutText.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 3, let i = Int(f[0]), let size = Int(f[2]), f[1] == "stdout" || f[1] == "stderr" else { continue }
            sizes[i, default: []].append((String(f[1]), size))
        }
        var outcomes: [CollectOutcome] = []
        for (i, c) in group.enumerated() {
            outcomes.append(await fetch(c, streams: sizes[i] ?? [], session: session))
        }
        return outcomes
    }

    /// Downloads an attempt's stdout, stderr and outputs into its results folder (emptied first,
    /// so the folder always holds one attempt's results).
    private func fetch(_ c: Collection, streams: [(name: String, size: Int)], session: any HostSession) async -> CollectOutcome {
        let q = RemotePath.shell
        let fm = FileManager.default
        try? fm.removeItem(atPath: c.destination)
        do {
            try fm.createDirectory(atPath: c.destination, withIntermediateDirectories: true)
        } catch {
            return .missingOutputs("cannot create \(c.destination): \(error.localizedDescription)")
        }
        var files = 0, bytes = 0
        do throws(SSHError) {
            for (name, size) in streams {
                if size == 0 {
                    guard fm.createFile(atPath: c.destination + "/" + name, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                        return .missingOutputs("cannot create \(c.destination)/\(name)")
                    }
                } else {
                    try await session.download(c.attemptDirectory + "/" + name, to: c.destination + "/" + name)
                }
                files += 1
                bytes += LocalFile.size(c.destination + "/" + name) ?? 0
            }
            guard !c.outputs.isEmpty else { return .done(files: files, bytes: bytes) }
            let listing = try await session.run("cd \(q(c.workdir)) && find . -type f -print0", timeout: 60)
            guard listing.status == .exited(0) else {
                return .missingOutputs("its working directory \(c.workdir) cannot be read: \(listing.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            let all = listing.stdout.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                .map { $0.hasPrefix("./") ? String($0.dropFirst(2)) : $0 }
            var unmatched: [String] = []
            var wanted: Set<String> = []
            for pattern in c.outputs {
                let hits = all.filter { Wildcard.matches(pattern, $0) }
                if hits.isEmpty { unmatched.append(pattern) }
                wanted.formUnion(hits)
            }
            for rel in wanted.sorted() where LocalFile.staysInside(rel) && rel != "stdout" && rel != "stderr" {
                let local = c.destination + "/" + rel
                try? fm.createDirectory(atPath: (local as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try await session.download(c.workdir + "/" + rel, to: local)
                files += 1
                bytes += LocalFile.size(local) ?? 0
            }
            if !unmatched.isEmpty {
                return .missingOutputs("declared output(s) \(unmatched.joined(separator: ", ")) matched no file in \(c.workdir)")
            }
            return .done(files: files, bytes: bytes)
        } catch {
            return .failed(error.description)
        }
    }
}
