import DroverCore
import Foundation
import Testing
@testable import DroverInventory

/// A scratch home directory with key files, for inventory tests.
final class Scratch {
    let home: String

    init() throws {
        home = FileManager.default.temporaryDirectory.appendingPathComponent("drover-inv-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: home + "/.ssh", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: home + "/.ssh/id_ed25519", contents: Data("key".utf8))
        _ = FileManager.default.createFile(atPath: home + "/.ssh/studio_key", contents: Data("key".utf8))
    }

    deinit { try? FileManager.default.removeItem(atPath: home) }

    func loader(env: [String: String] = [:], cwd: String? = nil, sshConfig: String = "", explicit: String? = nil) -> InventoryLoader {
        InventoryLoader(
            explicitPath: explicit, environment: { env[$0] }, workingDirectory: cwd ?? home, home: home,
            localUser: "alice", sshConfig: SSHConfig.parse(sshConfig, file: home + "/.ssh/config", sshDirectory: home + "/.ssh"))
    }

    func write(_ text: String, to name: String) throws -> String {
        let path = home + "/" + name
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

/// The messages an invalid inventory produces.
func issues(_ text: String, _ scratch: Scratch, sshConfig: String = "") -> [String] {
    do {
        _ = try scratch.loader(sshConfig: sshConfig).parse(Array(text.utf8), file: "hosts.json")
        return []
    } catch {
        return error.description.split(separator: "\n").map(String.init)
    }
}

@Suite("Inventory")
struct InventoryTests {
    @Test func appliesDefaultsAndBuiltIns() throws {
        let s = try Scratch()
        let inv = try s.loader().parse(Array("""
            {
              "defaults": { "user": "bob", "labels": { "site": "lab" }, "env": { "OMP_NUM_THREADS": "1" } },
              "hosts": [
                { "name": "box1", "address": "10.0.0.5", "slots": 4, "labels": { "gpu": "no" } },
                { "name": "box2", "port": 2222, "user": "carol", "identity": "~/.ssh/studio_key", "root": "/srv/drover",
                  "host_key_policy": "accept-new", "connect_timeout": 2.5, "known_hosts": "$HOME/kh" },
                { "name": "me", "transport": "local" }
              ]
            }
            """.utf8), file: "hosts.json")
        #expect(inv.hosts.count == 3)
        let b1 = inv.hosts[0], b2 = inv.hosts[1], me = inv.hosts[2]
        #expect(b1.address == "10.0.0.5" && b1.port == 22 && b1.user == "bob" && b1.slots == 4)
        #expect(b1.labels == ["site": "lab", "gpu": "no"])
        #expect(b1.env == ["OMP_NUM_THREADS": "1"])
        #expect(b1.root == "~/.drover/box1", "the default root is one folder per host")
        #expect(b1.hostKeyPolicy == .strict && b1.connectTimeout == 10 && b1.transport == .ssh)
        #expect(b1.knownHosts == s.home + "/.ssh/known_hosts")
        #expect(b1.identities == [s.home + "/.ssh/id_ed25519"] && !b1.identityIsExplicit)
        #expect(b2.address == "box2" && b2.port == 2222 && b2.user == "carol")
        #expect(b2.identities == [s.home + "/.ssh/studio_key"] && b2.identityIsExplicit)
        #expect(b2.knownHosts == s.home + "/kh")
        #expect(b2.root == "/srv/drover" && b2.hostKeyPolicy == .acceptNew && b2.connectTimeout == 2.5)
        #expect(b2.knownHostsName == "[box2]:2222")
        #expect(me.transport == .local && me.slots == Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    @Test func malformedJSONReportsLineAndColumn() throws {
        let s = try Scratch()
        let m = issues("{\n  \"hosts\": [\n    { \"name\": \"a\" },\n  ]\n}", s)
        #expect(m == ["hosts.json:4:3: malformed JSON: trailing comma before ']'"])
    }

    @Test func unknownKeySuggestsNearest() throws {
        let s = try Scratch()
        let m = issues("""
            {"hosts": [{"name": "a"}, {"name": "b"}, {"name": "c", "slot": 2}], "defaults": {"prot": 22}}
            """, s)
        #expect(m.contains { $0.hasSuffix("hosts[2].slot: unknown key; did you mean `slots`?") }, "\(m)")
        #expect(m.contains { $0.hasSuffix("defaults.prot: unknown key; did you mean `port`?") }, "\(m)")
        #expect(m.allSatisfy { $0.hasPrefix("hosts.json:1:") })
    }

    @Test(arguments: [
        ("{\"hosts\": [{\"name\": \"a\"}, {\"name\": \"a\"}]}", "hosts[1].name: duplicate host name \"a\""),
        ("{\"hosts\": [{\"name\": \"a\", \"port\": 0}]}", "hosts[0].port: port 0 is out of range"),
        ("{\"hosts\": [{\"name\": \"a\", \"port\": 70000}]}", "hosts[0].port: port 70000 is out of range"),
        ("{\"hosts\": [{\"name\": \"a\", \"port\": \"22\"}]}", "hosts[0].port: must be a whole number, not a string"),
        ("{\"hosts\": [{\"name\": \"a\", \"slots\": 0}]}", "hosts[0].slots: slots must be a positive number"),
        ("{\"hosts\": [{\"name\": \"a\", \"slots\": -3}]}", "hosts[0].slots: slots must be a positive number"),
        ("{\"hosts\": [{\"name\": \"a\", \"identity\": \"~/.ssh/missing\"}]}", "hosts[0].identity: key file"),
        ("{\"hosts\": [{\"name\": \"a b\"}]}", "hosts[0].name: name \"a b\" may use only"),
        ("{\"hosts\": [{\"name\": \"../x\"}]}", "hosts[0].name: name \"../x\" may use only"),
        ("{\"hosts\": [{\"name\": \"a\", \"host_key_policy\": \"acept-new\"}]}", "did you mean `accept-new`?"),
        ("{\"hosts\": [{\"name\": \"a\", \"transport\": \"shh\"}]}", "did you mean `ssh`?"),
        ("{\"hosts\": []}", "hosts: no hosts"),
        ("{}", "missing `hosts`"),
        ("{\"hosts\": [{\"address\": \"x\"}]}", "hosts[0]: missing `name`"),
        ("{\"defaults\": {\"name\": \"x\"}, \"hosts\": [{\"name\": \"a\"}]}", "defaults.name: `name` belongs to each host"),
        ("{\"hosts\": [{\"name\": \"a\", \"labels\": {\"sage\": 10.4}}]}", "hosts[0].labels.sage: must be a string"),
        ("{\"hosts\": [{\"name\": \"a\", \"env\": {\"1X\": \"y\"}}]}", "not a valid environment variable name"),
        ("{\"hosts\": [{\"name\": \"a\", \"address\": \"-oProxyCommand=x\"}]}", "address must not start with '-'"),
        ("{\"hosts\": [{\"name\": \"a\", \"connect_timeout\": 0}]}", "connect_timeout must be a number of seconds"),
        ("{\"hosts\": [{\"name\": \"a\", \"root\": \"relative/dir\"}]}", "root must be an absolute path"),
        ("[1]", "must be an object, not an array"),
    ])
    func eachValidationErrorIsOneClearMessage(text: String, expected: String) throws {
        let s = try Scratch()
        let m = issues(text, s)
        #expect(m.count == 1, "\(m)")
        #expect(m.first?.contains(expected) == true, "\(m)")
        #expect(m.first?.hasPrefix("hosts.json:") == true)
    }

    @Test func missingKeyFileNamesPathAndFix() throws {
        let s = try Scratch()
        let m = issues("{\"defaults\": {\"identity\": \"$HOME/.ssh/nope\"}, \"hosts\": [{\"name\": \"a\"}, {\"name\": \"b\"}]}", s)
        #expect(m.count == 2)
        #expect(m[0].contains("defaults.identity: key file \(s.home)/.ssh/nope not found"))
        #expect(m[0].contains("ssh-keygen -t ed25519"))
    }

    @Test func misspelledHostsKey() throws {
        let s = try Scratch()
        let m = issues("{\"host\": []}", s)
        #expect(m.contains { $0.contains("missing `hosts`") })
        #expect(m.contains { $0.contains("host: unknown key; did you mean `hosts`?") })
    }

    @Test func reportsAllProblemsAtOnce() throws {
        let s = try Scratch()
        let m = issues("{\"hosts\": [{\"name\": \"a\", \"port\": 0, \"slots\": 0, \"lables\": {}}]}", s)
        #expect(m.count == 3, "\(m)")
    }

    @Test func retentionIsReadFromDefaultsAndHostsAndValidated() throws {
        let s = try Scratch()
        let inv = try s.loader().parse(Array("""
            {
              "defaults": { "retention": { "keep": "3d", "max_size": "500MiB" } },
              "hosts": [
                { "name": "a" },
                { "name": "b", "retention": { "keep": 3600, "max_size": 1073741824, "segment_size": "1MiB" } }
              ]
            }
            """.utf8), file: "hosts.json")
        #expect(inv.host(named: "a")?.retention == RetentionPolicy(keep: 3 * 86_400, maxSize: 500 << 20))
        #expect(inv.host(named: "b")?.retention == RetentionPolicy(keep: 3600, maxSize: 1 << 30, segmentSize: 1 << 20))
        let problems = issues("""
            {"hosts": [{"name": "a", "retention": {"keep": "soon", "max_size": "2 lots", "kept": "1d"}}]}
            """, s)
        #expect(problems.contains { $0.contains("hosts[0].retention.keep") && $0.contains("duration such as \"7d\"") }, "\(problems)")
        #expect(problems.contains { $0.contains("hosts[0].retention.max_size") && $0.contains("2GiB") }, "\(problems)")
        #expect(problems.contains { $0.contains("hosts[0].retention.kept") }, "\(problems)")
    }
}

@Suite("Inventory lookup")
struct InventoryLookupTests {
    @Test func embeddedDefaultIsOneLocalHost() throws {
        let s = try Scratch()
        let inv = try s.loader().load()
        #expect(inv.source == .embeddedDefault)
        #expect(inv.hosts.count == 1)
        #expect(inv.hosts[0].name == "local" && inv.hosts[0].transport == .local)
        #expect(inv.hosts[0].slots == Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #expect(inv.hosts[0].root == s.home + "/.drover/local")
    }

    @Test func lookupOrder() throws {
        let s = try Scratch()
        let xdg = try s.write("{\"hosts\": [{\"name\": \"xdg\"}]}", to: "cfg/drover/hosts.json")
        _ = xdg
        #expect(try s.loader(env: ["XDG_CONFIG_HOME": s.home + "/cfg"]).load().hosts[0].name == "xdg")
        _ = try s.write("{\"hosts\": [{\"name\": \"cwd\"}]}", to: "work/hosts.json")
        #expect(try s.loader(env: ["XDG_CONFIG_HOME": s.home + "/cfg"], cwd: s.home + "/work").load().hosts[0].name == "cwd")
        let envFile = try s.write("{\"hosts\": [{\"name\": \"env\"}]}", to: "env.json")
        #expect(try s.loader(env: ["DROVER_INVENTORY": envFile], cwd: s.home + "/work").load().hosts[0].name == "env")
        let explicit = try s.write("{\"hosts\": [{\"name\": \"flag\"}]}", to: "flag.json")
        #expect(try s.loader(env: ["DROVER_INVENTORY": envFile], cwd: s.home + "/work", explicit: explicit).load().hosts[0].name == "flag")
        // The default lookup in ~/.config when XDG_CONFIG_HOME is unset.
        _ = try s.write("{\"hosts\": [{\"name\": \"dotconfig\"}]}", to: ".config/drover/hosts.json")
        #expect(try s.loader().load().hosts[0].name == "dotconfig")
    }

    @Test func namedFileMissingIsAClearError() throws {
        let s = try Scratch()
        #expect {
            try s.loader(env: ["DROVER_INVENTORY": "~/none.json"]).load()
        } throws: { error in
            "\(error)" == "\(s.home)/none.json: inventory file not found (named by $DROVER_INVENTORY); create it (see hosts.example.json) or fix the path"
        }
        #expect(throws: InventoryError.self) { try s.loader(explicit: "nope.json").load() }
    }

    @Test func exampleInventoryIsValid() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let bytes = try LocalFile.read(root.appendingPathComponent("hosts.example.json").path)
        let s = try Scratch()
        // The example names key files that exist only on its author's machine; check everything else.
        let result = Result { () throws(InventoryError) -> Inventory in try s.loader().parse(bytes, file: "hosts.example.json") }
        switch result {
        case .success(let inv):
            #expect(inv.hosts.count == 4)
        case .failure(.invalid(let list)):
            #expect(list.allSatisfy { $0.message.contains("key file") }, "\(list)")
        case .failure(let other):
            Issue.record("\(other)")
        }
    }
}

@Suite("Inventory: defaults.quarantine")
struct InventoryQuarantineTests {
    func load(_ quarantine: String) throws -> Inventory {
        try Scratch().loader().parse(Array("{\"defaults\": {\"quarantine\": \(quarantine)}, \"hosts\": [{\"name\": \"a\"}]}".utf8), file: "hosts.json")
    }

    @Test func settingsDurationsAndOff() throws {
        let q = try #require(try load(#"{"failures": 3, "within": "5m", "short": 30, "cooldown": "1h"}"#).quarantine)
        #expect(q == QuarantineSettings(failures: 3, within: 300, short: 30, cooldown: 3600))
        #expect(try load("false").quarantine == nil)
        #expect(try load("true").quarantine == QuarantineSettings())
        #expect(try Scratch().loader().parse(Array(#"{"hosts": [{"name": "a"}]}"#.utf8), file: "hosts.json").quarantine == QuarantineSettings(), "on by default")
    }

    @Test func badValuesNameTheFileAndField() throws {
        let s = try Scratch()
        let m = issues(#"{"defaults": {"quarantine": {"failures": 0, "cooldown": "soon", "within": "10m", "shrt": "1m"}}, "hosts": [{"name": "a"}]}"#, s)
        #expect(m.contains { $0.contains("hosts.json") && $0.contains("defaults.quarantine.failures") && $0.contains("1 or more") }, "\(m)")
        #expect(m.contains { $0.contains("defaults.quarantine.cooldown") && $0.contains("positive duration") }, "\(m)")
        #expect(m.contains { $0.contains("defaults.quarantine.shrt") && $0.contains("short") }, "\(m)")
        let host = issues(#"{"hosts": [{"name": "a", "quarantine": false}]}"#, s)
        #expect(host.contains { $0.contains("hosts[0].quarantine") }, "quarantine belongs to defaults: \(host)")
        let kind = issues(#"{"defaults": {"quarantine": "yes"}, "hosts": [{"name": "a"}]}"#, s)
        #expect(kind.contains { $0.contains("defaults.quarantine") && $0.contains("object") }, "\(kind)")
    }
}
