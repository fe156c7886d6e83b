import DroverCore
import Foundation
import Testing
@testable import DroverInventory

/// The inventory's `jump`: hosts behind a bastion.
@Suite("Inventory: jump")
struct InventoryJumpTests {
    func load(_ text: String, _ s: Scratch, sshConfig: String = "") throws -> Inventory {
        try s.loader(sshConfig: sshConfig).parse(Array(text.utf8), file: "hosts.json")
    }

    @Test func anInventoryHostAsHopCarriesItsOwnSettings() throws {
        let s = try Scratch()
        let inv = try load("""
            {"defaults": {"user": "ada"},
             "hosts": [
              {"name": "gw", "address": "203.0.113.5", "port": 2022, "user": "jumper", "known_hosts": "~/.ssh/kh.gw", "host_key_policy": "accept-new"},
              {"name": "inner", "address": "10.9.1.2", "jump": "gw"}
            ]}
            """, s)
        let inner = try #require(inv.host(named: "inner"))
        #expect(inner.via == ["gw"])
        #expect(inner.route == "10.9.1.2:22 via gw")
        let hop = try #require(inner.jump.first)
        #expect(hop.address == "203.0.113.5" && hop.port == 2022 && hop.user == "jumper")
        #expect(hop.knownHosts == s.home + "/.ssh/kh.gw" && hop.hostKeyPolicy == .acceptNew)
        #expect(inner.user == "ada" && inner.knownHosts == s.home + "/.ssh/known_hosts")
        #expect(inv.host(named: "gw")?.jump.isEmpty == true)
    }

    @Test func literalHopsChainsAndTheFirstHopsOwnRoute() throws {
        let s = try Scratch()
        let inv = try load("""
            {"hosts": [
              {"name": "edge", "address": "198.51.100.1"},
              {"name": "mid", "address": "10.1.0.1", "jump": "edge"},
              {"name": "a", "address": "10.2.0.1", "jump": "mid"},
              {"name": "b", "address": "10.2.0.2", "jump": ["mid", "ops@10.1.0.9:2200"]},
              {"name": "c", "address": "10.2.0.3", "jump": "edge,mid"},
              {"name": "d", "address": "10.2.0.4", "jump": "root@gw.example.org"}
            ]}
            """, s)
        #expect(inv.host(named: "a")?.via == ["edge", "mid"])
        let b = try #require(inv.host(named: "b"))
        #expect(b.via == ["edge", "mid", "10.1.0.9:2200"])
        #expect(b.jump[2].user == "ops" && b.jump[2].port == 2200 && b.jump[2].address == "10.1.0.9")
        #expect(b.route == "10.2.0.2:22 via edge,mid,10.1.0.9:2200")
        #expect(inv.host(named: "c")?.via == ["edge", "mid"])
        let d = try #require(inv.host(named: "d"))
        #expect(d.via == ["gw.example.org"] && d.jump[0].user == "root" && d.jump[0].port == 22)
        // Every hop is complete and has no route of its own: the whole route is in `jump`.
        #expect(b.jump.allSatisfy { $0.jump.isEmpty })
    }

    @Test func defaultsJumpAndNone() throws {
        let s = try Scratch()
        let inv = try load("""
            {"defaults": {"jump": "gw"},
             "hosts": [
              {"name": "gw", "address": "203.0.113.5", "jump": "none"},
              {"name": "x", "address": "10.0.0.1"},
              {"name": "here", "transport": "local"}
            ]}
            """, s)
        #expect(inv.host(named: "gw")?.jump.isEmpty == true)
        #expect(inv.host(named: "x")?.via == ["gw"])
        #expect(inv.host(named: "here")?.jump.isEmpty == true)
    }

    @Test func anSSHConfigAliasAsBareHop() throws {
        let s = try Scratch()
        let inv = try load(#"{"hosts": [{"name": "x", "address": "10.0.0.1", "jump": "bastion"}]}"#, s,
                           sshConfig: "Host bastion\n  HostName 203.0.113.7\n  User b\n")
        let hop = try #require(inv.hosts[0].jump.first)
        #expect(hop.name == "bastion" && hop.address == "203.0.113.7" && hop.user == "b")
    }

    @Test(arguments: [
        (#"{"hosts": [{"name": "h1", "address": "10.0.0.1"}, {"name": "h4", "address": "10.0.1.2", "jump": "h9"}]}"#,
         #"hosts.json:1:97: hosts[1].jump: host "h4": jump "h9" is not a host of this inventory; did you mean "h1"? (a machine outside the inventory: write "user@h9" or "h9:22", or define `Host h9` in ~/.ssh/config)"#),
        (#"{"hosts": [{"name": "h1", "address": "10.0.0.1", "jump": "h1"}]}"#,
         #"hosts.json:1:58: hosts[0].jump: host "h1": jumps to itself ("h1"); a host cannot be its own hop"#),
        (#"{"defaults": {"jump": "h1"}, "hosts": [{"name": "h1", "address": "10.0.0.1"}]}"#,
         #"hosts.json:1:23: defaults.jump: host "h1": jumps to itself ("h1"); a host cannot be its own hop; this jump comes from `defaults`: set "jump": "none" on h1"#),
        (#"{"hosts": [{"name": "a", "jump": "b"}, {"name": "b", "jump": "a"}]}"#,
         #"hosts.json:1:34: hosts[0].jump: host "a": jump cycle a → b → a; a host cannot be reached through itself — break the cycle ("jump": "none" on the host nearest to this machine)"#),
        (#"{"hosts": [{"name": "a", "jump": 3}]}"#,
         #"hosts.json:1:34: hosts[0].jump: must be a host name, "user@host:port", a list of them (the first hop first), or "none"; not a number"#),
        (#"{"hosts": [{"name": "a", "jump": "b,,c"}]}"#,
         #"hosts.json:1:34: hosts[0].jump: empty hop in "b,,c"; write host names or "user@host:port", the first hop first, or "none" for a direct connection"#),
        (#"{"hosts": [{"name": "a", "jump": "x@y:99999"}]}"#,
         #"hosts.json:1:34: hosts[0].jump: host "a": jump "x@y:99999" is neither a host of this inventory nor [user@]host[:port]"#),
        (#"{"hosts": [{"name": "l", "transport": "local"}, {"name": "a", "jump": "l"}]}"#,
         #"hosts.json:1:71: hosts[1].jump: host "a": jump "l" has "transport": "local"; a hop must be an SSH host"#),
        (#"{"hosts": [{"name": "a", "jump": "u;id@gw.example.org"}]}"#,
         #"hosts.json:1:34: hosts[0].jump: host "a": jump "u;id@gw.example.org": the user contains ";""#),
    ])
    func invalidJumpIsOneClearMessage(text: String, expected: String) throws {
        let s = try Scratch()
        #expect(issues(text, s) == [expected])
    }

    @Test func aLongerCycleIsReportedOnceAndOtherHostsStillResolve() throws {
        let s = try Scratch()
        let found = issues("""
            {"hosts": [{"name": "a", "jump": "c"}, {"name": "b", "jump": "a"}, {"name": "c", "jump": "b"}, {"name": "d", "jump": "a"}]}
            """, s)
        #expect(found.count == 1)
        #expect(found.first?.contains("jump cycle a → c → b → a") == true)
    }
}
