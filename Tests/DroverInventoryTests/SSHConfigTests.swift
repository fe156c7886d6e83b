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
        let inv = try s.loader(sshConfig: Self.config).parse(Array("{\"hosts\": [{\"name\": \"j\", \"address\": \"jumpy\"}]}".utf8), file: "hosts.json")
        #expect(inv.hosts[0].unsupportedConfig.count == 1)
        #expect(inv.hosts[0].unsupportedConfig[0].contains("ProxyJump bastion"))
        #expect(inv.hosts[0].unsupportedConfig[0].contains(":14:"))
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
}
