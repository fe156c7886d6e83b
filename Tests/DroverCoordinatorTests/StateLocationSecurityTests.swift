import DroverCore
import Foundation
import Testing
@testable import DroverCoordinator

/// The coordinator's state directory and journal with the wrong owner or mode, and the modes
/// of what the coordinator creates (docs/architecture.md, "Security"). Run as root, the tests
/// hand files to another uid with chown.
@Suite("Coordinator state: ownership and modes", .serialized, .timeLimit(.minutes(3)))
struct StateLocationSecurityTests {
    static let foreignUID: uid_t = 4242
    static var isRoot: Bool { geteuid() == 0 }

    enum Fault: String, CaseIterable, Sendable { case foreignOwner, groupWritable, worldWritable, symbolicLink }

    static var drover: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("drover").path
    }

    static func privateFolder() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("drover-sec-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return path
    }

    static func tree(_ path: String) throws -> [String] {
        try ChildProcess.run(["/usr/bin/find", path, "-printf", "%P %y %m %U %s %l\n"]).stdoutText.split(separator: "\n").map(String.init).sorted()
    }

    /// An inventory with one local host whose agent root is under `folder`.
    static func localInventory(in folder: String) throws -> String {
        let path = folder + "/hosts.json"
        try Data(#"{"hosts": [{"name": "here", "transport": "local", "slots": 2, "root": "\#(folder)/agent"}]}"#.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test(.enabled(if: StateLocationSecurityTests.isRoot, "needs root to chown to another uid"),
          arguments: ["", "journal.db", "journal.db-wal", "coordinator.lock", "coordinator.log"], Fault.allCases)
    func unsafeStateDirectoryOrJournalIsRefused(relative: String, fault: Fault) throws {
        if relative.isEmpty && fault == .symbolicLink { return }  // the directory itself may be a link to a private one
        let folder = try Self.privateFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let inventory = try Self.localInventory(in: folder)
        let location = StateLocation(explicit: folder + "/state")
        _ = try Journal(location)  // a journal with one job's worth of schema
        let path = relative.isEmpty ? location.path : location.path + "/" + relative
        let isDirectory = relative.isEmpty
        if !isDirectory && !LocalFile.exists(path) { #expect(FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])) }
        let words: [String]
        switch fault {
        case .foreignOwner:
            #expect(chown(path, Self.foreignUID, Self.foreignUID) == 0)
            words = ["belongs to uid \(Self.foreignUID)", "chown \(geteuid()) \(path)"]
        case .groupWritable:
            #expect(chmod(path, isDirectory ? 0o770 : 0o660) == 0)
            words = ["writable by group or others", "chmod \(isDirectory ? 700 : 600) \(path)"]
        case .worldWritable:
            #expect(chmod(path, isDirectory ? 0o707 : 0o606) == 0)
            words = ["writable by group or others", "chmod \(isDirectory ? 700 : 600) \(path)"]
        case .symbolicLink:
            #expect(rename(path, path + ".real") == 0 && symlink(path + ".real", path) == 0)
            words = ["symbolic link"]
        }
        let before = try Self.tree(folder)

        #expect {
            _ = try Journal(location)
        } throws: { error in
            guard let e = error as? UnsafeStateError else { return false }
            return e.description.hasPrefix("refusing the state directory \(location.path): \(path) ") && words.allSatisfy(e.description.contains)
        }
        for args in [["ps"], ["submit", "--inventory", inventory, "--", "true"], ["coordinator", "--inventory", inventory]] {
            let r = try ChildProcess.run([Self.drover, args[0], "--state", location.path] + args.dropFirst(), timeout: 30)
            #expect(r.status == 1, "\(args[0]): \(r.stdoutText)\(r.stderrText)")
            let lines = r.stderrText.split(separator: "\n")
            #expect(lines.count == 1, "\(args[0]): one line: \(r.stderrText)")
            let line = String(lines.first ?? "")
            #expect(line.hasPrefix("drover: error: refusing the state directory \(location.path): \(path) "), "\(line)")
            for w in words { #expect(line.contains(w), "\(args[0]): missing \"\(w)\" in \(line)") }
        }
        #expect(try Self.tree(folder) == before, "a refusal wrote something")
    }

    /// A job through `drover run` on a local host: the state directory is 0700, the journal,
    /// its WAL files, the lock and the log 0600, and so are the agent's.
    @Test func filesTheCoordinatorCreatesArePrivate() throws {
        let folder = try Self.privateFolder()
        let inventory = try Self.localInventory(in: folder)
        let state = folder + "/state"
        defer {
            _ = try? ChildProcess.run([Self.drover, "down", "--kill-jobs", "--state", state, "--inventory", inventory], timeout: 30)
            // Remove the folder only once no coordinator can write in it any more.
            let deadline = Date().addingTimeInterval(10)
            while let pid = StateLocation(explicit: state).runningCoordinator(), Date() < deadline {
                if pid > 0 { kill(pid, SIGKILL) }
                usleep(20_000)
            }
            try? FileManager.default.removeItem(atPath: folder)
        }
        let r = try ChildProcess.run([Self.drover, "run", "--state", state, "--inventory", inventory, "--", "echo", "private"], timeout: 60)
        #expect(r.status == 0 && r.stdoutText == "private\n", "\(r.stdoutText)\(r.stderrText)")
        let location = StateLocation(explicit: state)
        #expect(location.runningCoordinator() != nil, "the coordinator keeps its journal open (WAL files present)")
        var checked: [String] = []
        for path in [location.journalPath, location.journalPath + "-wal", location.journalPath + "-shm", location.lockPath, location.logPath] {
            let a = try FileManager.default.attributesOfItem(atPath: path)
            #expect(a[.posixPermissions] as? Int == 0o600, "\(path)")
            #expect((a[.ownerAccountID] as? NSNumber)?.uint32Value == geteuid(), "\(path)")
            checked.append(path)
        }
        #expect(try FileManager.default.attributesOfItem(atPath: state)[.posixPermissions] as? Int == 0o700)
        // Whatever else is in the state directory and the agent's root: folders 0700, files 0600
        // (agent binaries 0700).
        for line in try Self.tree(folder) where line.hasPrefix("state/") || line.hasPrefix("agent") {
            let f = line.split(separator: " ", omittingEmptySubsequences: false)
            let (name, kind, mode) = (String(f[0]), f[1], f[2])
            if kind == "d" { #expect(mode == "700", "\(line)") }
            if kind == "f" { #expect(mode == (name.hasPrefix("agent/bin/") ? "700" : "600") || (name.hasPrefix("agent/files/") && mode == "400"), "\(line)") }
            #expect(kind == "d" || kind == "f", "\(line)")
        }
        #expect(checked.count == 5)
    }
}
