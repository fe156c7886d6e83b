import DroverCore
import Foundation
import Testing
@testable import DroverAgent

/// The agent's state directory and inbox files with the wrong owner or mode (docs/state-format.md,
/// "Who may write"). The tests run as root, so they can hand files to another uid with chown.
@Suite("drover-agent: ownership and modes", .serialized, .timeLimit(.minutes(3)))
struct StateOwnershipTests {
    /// A uid that owns nothing on this machine (no user needed).
    static let foreignUID: uid_t = 4242

    static var isRoot: Bool { geteuid() == 0 }

    enum Fault: String, CaseIterable, Sendable {
        case foreignOwner, groupWritable, worldWritable, symbolicLink
    }

    /// Every entry under `path` with its type, mode, owner and size, sorted (a before/after snapshot).
    static func tree(_ path: String) throws -> [String] {
        let r = try ChildProcess.run(["/usr/bin/find", path, "-printf", "%P %y %m %U %s %l\n"])
        return r.stdoutText.split(separator: "\n").map(String.init).sorted()
    }

    /// A new private folder in the temporary directory (removed by the caller).
    static func privateFolder() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("drover-sec-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return path
    }

    /// A parent folder of our own holding a root `r` prepared the way the agent prepares it.
    static func preparedRoot() throws -> (parent: String, dir: StateDirectory) {
        let parent = try privateFolder()
        let dir = StateDirectory(root: parent + "/r")
        try dir.prepare()
        return (parent, dir)
    }

    static func agent(_ args: [String], root: String, stdin: String = "") throws -> ChildProcess.Outcome {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("drover-agent").path
        return try ChildProcess.run([binary] + args + ["--root", root], stdin: Array(stdin.utf8), timeout: 30)
    }

    /// Puts `fault` on `path`; returns the words the refusal must contain.
    static func apply(_ fault: Fault, to path: String, isDirectory: Bool) throws -> [String] {
        switch fault {
        case .foreignOwner:
            #expect(chown(path, foreignUID, foreignUID) == 0)
            return [path, "belongs to uid \(foreignUID)", "chown \(geteuid())"]
        case .groupWritable:
            #expect(chmod(path, isDirectory ? 0o770 : 0o660) == 0)
            return [path, "writable by group or others", isDirectory ? "chmod 700 \(path)" : "chmod 600 \(path)"]
        case .worldWritable:
            #expect(chmod(path, isDirectory ? 0o703 : 0o602) == 0)
            return [path, "writable by group or others", isDirectory ? "chmod 700 \(path)" : "chmod 600 \(path)"]
        case .symbolicLink:
            // The real thing moves elsewhere; a link takes its place.
            #expect(rename(path, path + ".real") == 0)
            #expect(symlink(path + ".real", path) == 0)
            return [path, "symbolic link"]
        }
    }

    /// The root, each of its folders and a state file: another owner, group- or world-writable,
    /// or a link, and `run` and `submit` both refuse with one line naming the path, what is
    /// wrong and what to do; nothing is written anywhere (the whole tree is unchanged).
    @Test(.enabled(if: StateOwnershipTests.isRoot, "needs root to chown to another uid"),
          arguments: ["", "inbox", "inbox/rejected", "attempts", "files", "events.log"], Fault.allCases)
    func unsafeRootFolderOrStateFileIsRefusedByPath(relative: String, fault: Fault) throws {
        if relative.isEmpty && fault == .symbolicLink { return }  // a root may be a link (next test)
        let (parent, dir) = try Self.preparedRoot()
        defer {
            _ = try? Self.agent(["stop", "--kill-jobs"], root: dir.root)  // only if one started by mistake
            try? FileManager.default.removeItem(atPath: parent)
        }
        let isDirectory = relative != "events.log"
        let path = relative.isEmpty ? dir.root : dir.root + "/" + relative
        if !isDirectory { try Data("{\"seq\":1,\"type\":\"agent_started\",\"pid\":1}\n".utf8).write(to: URL(fileURLWithPath: path)) }
        let words = try Self.apply(fault, to: path, isDirectory: isDirectory)
        let before = try Self.tree(parent)

        let run = try Self.agent(["run", "--detach"], root: dir.root)
        let submit = try Self.agent(["submit"], root: dir.root, stdin: #"{"job":"x","attempt":1,"argv":["true"]}"#)
        for r in [run, submit] {
            #expect(r.status == 1, "\(relative) \(fault): \(r.stdoutText) \(r.stderrText)")
            let lines = r.stderrText.split(separator: "\n")
            #expect(lines.count == 1, "one line: \(r.stderrText)")
            let line = String(lines.first ?? "")
            #expect(line.hasPrefix("drover-agent: error: refusing the state directory \(dir.root): "), "\(line)")
            for w in words { #expect(line.contains(w), "missing \"\(w)\" in: \(line)") }
        }
        #expect(try Self.tree(parent) == before, "the refusal wrote something")
        #expect(!LocalFile.exists(dir.heartbeatFile), "an agent started")
    }

    @Test func aRootThatIsALinkToAPrivateFolderIsAccepted() throws {
        let (parent, dir) = try Self.preparedRoot()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let link = parent + "/link"
        #expect(symlink(dir.root, link) == 0)
        let r = try Self.agent(["submit"], root: link, stdin: #"{"job":"x","attempt":1,"argv":["true"]}"#)
        #expect(r.status == 0, "\(r.stderrText)")
        #expect(listDirectory(dir.inbox).contains { $0.hasSuffix(".json") })
    }

    /// Inbox files that are not the agent user's own regular files are never executed: each is
    /// moved to inbox/rejected/ unread (a link is moved, not followed) with a reason and a
    /// `rejected` event, and the agent goes on with the next command.
    @Test(.enabled(if: StateOwnershipTests.isRoot, "needs root to chown to another uid"))
    func inboxFilesOfAnotherUserOpenModesOrLinksAreMovedAsideUnexecuted() throws {
        let h = try AgentHarness()
        try h.start()
        let outside = try Self.privateFolder()  // a folder outside the state directory
        defer { try? FileManager.default.removeItem(atPath: outside) }

        func command(_ job: String) -> Data {
            Data(#"{"type":"start","spec":{"job":"\#(job)","attempt":1,"argv":["touch","\#(outside)/ran-\#(job)"]}}"#.utf8)
        }
        /// Writes a command under a hidden name, gives it its fault, then renames it into the inbox.
        func place(_ name: String, _ job: String, owner: uid_t? = nil, mode: mode_t = 0o600) throws {
            let tmp = h.dir.inbox + "/.tmp-" + name
            try command(job).write(to: URL(fileURLWithPath: tmp))
            #expect(chmod(tmp, mode) == 0)
            if let owner { #expect(chown(tmp, owner, owner) == 0) }
            #expect(rename(tmp, h.dir.inbox + "/" + name) == 0)
        }
        try place("001-foreign.json", "foreign", owner: Self.foreignUID)
        try place("002-group.json", "group", mode: 0o620)
        try place("003-world.json", "world", mode: 0o602)
        // A link to a well-formed command file outside the state directory.
        let target = outside + "/command.json"
        try command("linked").write(to: URL(fileURLWithPath: target))
        #expect(chmod(target, 0o600) == 0)
        #expect(symlink(target, h.dir.inbox + "/.tmp-link") == 0)
        #expect(rename(h.dir.inbox + "/.tmp-link", h.dir.inbox + "/004-link.json") == 0)
        // Then a good command: once it has run, the ones before it were handled.
        let good = try h.submit("good", argv: ["touch", outside + "/ran-good"])
        _ = try h.result(good)

        let refused: [(file: String, job: String, words: [String])] = [
            ("001-foreign.json", "foreign", ["belongs to uid \(Self.foreignUID)"]),
            ("002-group.json", "group", ["writable by group or others", "mode 620"]),
            ("003-world.json", "world", ["writable by group or others", "mode 602"]),
            ("004-link.json", "linked", ["symbolic link"]),
        ]
        try h.waitFor("four rejected events") { h.events().filter { $0["type"]?.stringValue == "rejected" }.count == 4 }
        let events = h.events().filter { $0["type"]?.stringValue == "rejected" }
        for r in refused {
            #expect(!LocalFile.exists(outside + "/ran-" + r.job), "\(r.file) was executed")
            #expect(!LocalFile.exists(h.dir.attemptDirectory(AttemptID(job: r.job, attempt: 1))))
            #expect(!listDirectory(h.dir.inbox).contains(r.file))
            let reason = (try? String(contentsOfFile: h.dir.rejected + "/" + r.file + ".reason", encoding: .utf8)) ?? ""
            let event = events.first { $0["file"]?.stringValue == r.file }?["reason"]?.stringValue ?? ""
            for text in [reason, event] {
                #expect(text.contains("not executed") && text.contains(h.dir.inbox + "/" + r.file), "\(r.file): \(text)")
                for w in r.words { #expect(text.contains(w), "\(r.file): missing \"\(w)\" in \(text)") }
            }
        }
        // The link itself was moved, not what it points to.
        var st = stat()
        #expect(lstat(h.dir.rejected + "/004-link.json", &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK)
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == command("linked"))
        #expect(LocalFile.exists(outside + "/ran-good"))
        #expect(Set(listDirectory(h.dir.attempts)) == ["good"])
        // The agent's own log says so too.
        let log = (try? String(contentsOfFile: h.dir.agentLog, encoding: .utf8)) ?? ""
        #expect(log.contains("rejected inbox/001-foreign.json: not executed"))
    }

    /// Beyond stateFilesAre0600AndFolders0700: the other folders and files the agent creates.
    @Test func everyFolderIs0700AndEveryFile0600() throws {
        let h = try AgentHarness()
        // A command placed while no agent runs stays in the inbox, as placed.
        let placed = try h.agent(["submit"], stdin: #"{"job":"w","attempt":1,"argv":["sh","-c","echo out; echo err >&2; echo x > made"],"workdir":true}"#)
        #expect(placed.status == 0, "\(placed.stderr)")
        let inboxFiles = listDirectory(h.dir.inbox).filter { $0.hasSuffix(".json") }
        #expect(inboxFiles.count == 1)
        let queued = inboxFiles.map { h.dir.inbox + "/" + $0 }
        let queuedModes = try queued.map { try FileManager.default.attributesOfItem(atPath: $0)[.posixPermissions] as? Int }
        try h.start()
        try h.place(["type": "nonsense"])
        let id = AttemptID(job: "w", attempt: 1)
        _ = try h.result(id)
        try h.waitFor("the rejection") { listDirectory(h.dir.rejected).contains { $0.hasSuffix(".reason") } }
        let reason = try #require(listDirectory(h.dir.rejected).first { $0.hasSuffix(".reason") })
        for mode in queuedModes { #expect(mode == 0o600) }
        let files = [h.dir.lockFile, h.dir.agentLog, h.dir.heartbeatFile, h.dir.eventLog, h.dir.stderrFile(id), h.dir.rejected + "/" + reason]
        let folders = [h.root, h.dir.inbox, h.dir.rejected, h.dir.attempts, h.dir.files, h.dir.attempts + "/w", h.dir.workDirectory(id)]
        for path in files {
            let a = try FileManager.default.attributesOfItem(atPath: path)
            #expect(a[.posixPermissions] as? Int == 0o600, "\(path)")
            #expect((a[.ownerAccountID] as? NSNumber)?.uint32Value == geteuid(), "\(path)")
        }
        for path in folders {
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o700, "\(path)")
        }
    }
}
