import Foundation
import Testing
@testable import DroverInventory

@Suite("ssh_config resolution")
struct SSHConfigTests {
    static let config = """
        # personal machines
        Host studio studio.local
            HostName 192.168.1.20
            User ada
            Port 2200
            IdentityFile ~/.ssh/studio_key

        Host lab-*  !lab-old
            HostName %h.lab.example.org
            User=labuser
            ServerAliveInterval 30

        Host jumpy
            ProxyJump bastion

        Host *
            User fallback
            IdentityFile ~/.ssh/id_ed25519
            Port 22
            FrobnicateLevel 3
        """

    @Test func honoursHostNameUserPortIdentityFile() throws {
        let s = try Scratch()
        let inv = try s.loader(sshConfig: Self.config).parse(Array("""
            {"hosts": [{"name": "mac", "address": "studio"}, {"name": "lab-3"}, {"name": "lab-old"}, {"name": "plain", "address": "10.1.1.1", "user": "explicit"}]}
            """.utf8), file: "hosts.json")
        let mac = inv.hosts[0]
        #expect(mac.address == "192.168.1.20" && mac.user == "ada" && mac.port == 2200)
        #expect(mac.identities == [s.home + "/.ssh/studio_key", s.home + "/.ssh/id_ed25519"])
        #expect(mac.knownHostsName == "[192.168.1.20]:2200")
        let lab = inv.hosts[1]
        #expect(lab.address == "lab-3.lab.example.org" && lab.user == "labuser" && lab.port == 22)
        // Negated pattern: only the `Host *` block applies.
        let old = inv.hosts[2]
        #expect(old.address == "lab-old" && old.user == "fallback")
        // An explicit inventory field wins over ssh_config.
        #expect(inv.hosts[3].user == "explicit")
    }

    @Test func unsupportedOptionIsReportedNotIgnored() throws {
        let s = try Scratch()
        let config = Self.config + "\nHost odd\n    HostKeyAlias other\n"
        let inv = try s.loader(sshConfig: config).parse(Array("{\"hosts\": [{\"name\": \"o\", \"address\": \"odd\"}]}".utf8), file: "hosts.json")
        #expect(inv.hosts[0].unsupportedConfig.count == 1)
        #expect(inv.hosts[0].unsupportedConfig[0].contains("HostKeyAlias other"))
        #expect(inv.hosts[0].unsupportedConfig[0].contains(":22:"))
        #expect(inv.hosts[0].ignoredConfig.contains { $0.contains("FrobnicateLevel") })
    }

    @Test func firstValueWinsAndEqualsSyntax() {
        let c = SSHConfig.parse("Host a\n  Port=1234\nHost *\n  Port 99\n  User \"x y\"\n", file: "cfg")
        let r = c.resolve("a")
        #expect(r.port == 1234)
        #expect(r.user == "x y")
    }

    @Test func includeIsFollowed() throws {
        let s = try Scratch()
        _ = try s.write("Host inc\n  HostName 10.9.9.9\n", to: ".ssh/conf.d/extra")
        let c = SSHConfig.parse("Include conf.d/*\nHost other\n  User u\n", file: "cfg", sshDirectory: s.home + "/.ssh")
        #expect(c.resolve("inc").hostName == "10.9.9.9")
        #expect(c.resolve("other").user == "u")
    }

    @Test func patternMatching() {
        #expect(SSHConfig.matches("web1", patterns: ["web?"]))
        #expect(SSHConfig.matches("a.example.org", patterns: ["*.example.org"]))
        #expect(!SSHConfig.matches("x.example.com", patterns: ["*.example.org"]))
        #expect(!SSHConfig.matches("bad", patterns: ["*", "!bad"]))
        #expect(SSHConfig.matches("b", patterns: ["a,b"]))
    }

    // MARK: ProxyJump

    @Test(arguments: [
        ("h1", JumpSpec(host: "h1")),
        ("ada@bastion", JumpSpec(user: "ada", host: "bastion")),
        ("ada@bastion.example.org:2222", JumpSpec(user: "ada", host: "bastion.example.org", port: 2222)),
        ("10.0.0.1:22", JumpSpec(host: "10.0.0.1", port: 22)),
        ("[fd00::1]:2200", JumpSpec(host: "fd00::1", port: 2200)),
        ("ssh://root@gw:23", JumpSpec(user: "root", host: "gw", port: 23)),
    ])
    func jumpSpecParses(text: String, expected: JumpSpec) {
        #expect(JumpSpec(text) == expected)
    }

    @Test(arguments: ["", "a@", "@h", "h:", "h:0", "h:70000", "h:x", "[fd00::1", "a b", "-oProxyCommand=x"])
    func jumpSpecRefuses(text: String) {
        #expect(JumpSpec(text) == nil)
    }

    @Test func proxyJumpOneHopChainUserPortAndNone() {
        let c = SSHConfig.parse("""
            Host one
                ProxyJump gw
            Host chain
                ProxyJump ada@a:2200, b
            Host off
                ProxyJump none
            Host *
                ProxyJump fallback
            """, file: "cfg")
        #expect(c.resolve("one").proxyJump == [JumpSpec(host: "gw")])
        #expect(c.resolve("one").proxyJumpSource == "cfg:2")
        #expect(c.resolve("chain").proxyJump == [JumpSpec(user: "ada", host: "a", port: 2200), JumpSpec(host: "b")])
        #expect(c.resolve("off").proxyJump == [])
        #expect(c.resolve("other").proxyJump == [JumpSpec(host: "fallback")])
        #expect(c.resolve("one").unsupported.isEmpty)
    }

    @Test func proxyCommandIsRefusedNamingFileAndLineAndTheFirstOfTheTwoWins() {
        let c = SSHConfig.parse("""
            Host pc
                ProxyCommand ssh -W %h:%p gw
                ProxyJump gw
            Host pj
                ProxyJump gw
                ProxyCommand ssh -W %h:%p gw
            Host pcnone
                ProxyCommand none
                ProxyJump gw
            """, file: "/home/ada/.ssh/config")
        let pc = c.resolve("pc")
        #expect(pc.proxyJump == [])
        #expect(pc.unsupported.count == 1)
        #expect(pc.unsupported[0].hasPrefix("/home/ada/.ssh/config:2: `ProxyCommand ssh -W %h:%p gw` is not supported"))
        #expect(pc.unsupported[0].contains("ProxyJump") && pc.unsupported[0].contains("`jump`"))
        #expect(c.resolve("pj").proxyJump == [JumpSpec(host: "gw")] && c.resolve("pj").unsupported.isEmpty)
        #expect(c.resolve("pcnone").proxyJump == [] && c.resolve("pcnone").unsupported.isEmpty)
    }

    @Test func proxyJumpFromAnIncludedFile() throws {
        let s = try Scratch()
        _ = try s.write("Host inner-*\n  ProxyJump gw.example.org\n", to: ".ssh/conf.d/bastion.conf")
        let c = SSHConfig.parse("Include conf.d/*\nHost other\n  User u\n", file: "cfg", sshDirectory: s.home + "/.ssh")
        #expect(c.resolve("inner-7").proxyJump == [JumpSpec(host: "gw.example.org")])
        #expect(c.resolve("inner-7").proxyJumpSource == s.home + "/.ssh/conf.d/bastion.conf:2")
        #expect(c.resolve("other").proxyJump == nil)
    }

    @Test func proxyJumpBecomesTheRouteWithTheHopsOwnSettings() throws {
        let s = try Scratch()
        let config = """
            Host inner
                HostName 10.9.1.2
                ProxyJump gw
            Host gw
                HostName 203.0.113.5
                User jumper
                Port 2022
                IdentityFile ~/.ssh/studio_key
                UserKnownHostsFile ~/.ssh/known_hosts.gw
            Host deep
                ProxyJump inner
            """
        let inv = try s.loader(sshConfig: config).parse(Array("""
            {"hosts": [{"name": "a", "address": "inner"}, {"name": "b", "address": "deep"}, {"name": "c", "address": "inner", "jump": "none"}]}
            """.utf8), file: "hosts.json")
        let a = inv.hosts[0]
        #expect(a.address == "10.9.1.2")
        #expect(a.via == ["gw"])
        let gw = try #require(a.jump.first)
        #expect(gw.address == "203.0.113.5" && gw.user == "jumper" && gw.port == 2022)
        #expect(gw.identities.first == s.home + "/.ssh/studio_key")
        #expect(gw.knownHosts == s.home + "/.ssh/known_hosts.gw")
        #expect(a.route == "10.9.1.2:22 via gw")
        // deep → inner → gw: the first hop's own ProxyJump applies.
        #expect(inv.hosts[1].via == ["gw", "inner"])
        #expect(inv.hosts[1].jump[1].address == "10.9.1.2")
        // The inventory's "none" wins over ssh_config.
        #expect(inv.hosts[2].jump.isEmpty)
    }

    @Test func proxyJumpCycleFailsTheHostNotTheInventory() throws {
        let s = try Scratch()
        let config = "Host x\n  ProxyJump y\nHost y\n  ProxyJump x\n"
        let inv = try s.loader(sshConfig: config).parse(Array(#"{"hosts": [{"name": "x"}]}"#.utf8), file: "hosts.json")
        let problems = inv.hosts[0].unsupportedConfig
        #expect(problems.count == 1)
        #expect(problems.first?.contains("`ProxyJump` cycle x → y → x") == true)
        #expect(problems.first?.contains(s.home + "/.ssh/config:4") == true)
    }
}
