import DroverCore
import Foundation
import Testing
@testable import DroverInventory

/// What an inventory entry could try to inject into a shell: a `user` or `address` with shell
/// metacharacters is refused, with the field and the character; a `root` with them is accepted
/// (it is quoted wherever it goes into a remote shell line; the testbed test
/// ShellInjectionTests checks that end to end) unless it has control characters.
@Suite("Inventory: shell metacharacters")
struct InventoryInjectionTests {
    static let hostileUsers = ["a;touch x", "$(id)", "`id`", "a|b", "a&&b", "a'b", "a\"b", "a\\b", "a>b", "a b", "a\nb", "a\tb", "a*", "(a)"]

    @Test(arguments: hostileUsers)
    func aUserWithShellMetacharactersIsRefused(user: String) throws {
        let s = try Scratch()
        for (place, text) in [
            ("hosts[0].user", #"{"hosts": [{"name": "h", "address": "h.lan", "user": \#(JSONText.quote(user))}]}"#),
            ("defaults.user", #"{"defaults": {"user": \#(JSONText.quote(user))}, "hosts": [{"name": "h"}]}"#),
        ] {
            let found = issues(text, s)
            #expect(found.count == 1, "\(found)")
            let line = found.first ?? ""
            #expect(line.hasPrefix("hosts.json:1:"), "\(line)")
            #expect(line.contains("\(place): user \(JSONText.quote(user)) contains "), "\(line)")
            #expect(line.contains("may not contain shell metacharacters") && line.contains("use the login name on the host"), "\(line)")
        }
    }

    @Test(arguments: ["h;touch-x", "$(id)", "`id`", "a|b", "a&b", "h'x", "h\"x", "(h)", "h>x", "h*"])
    func anAddressWithShellMetacharactersIsRefused(address: String) throws {
        let found = issues(#"{"hosts": [{"name": "h", "address": \#(JSONText.quote(address))}]}"#, try Scratch())
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.contains("hosts[0].address: address \(JSONText.quote(address)) contains ") == true, "\(found)")
    }

    @Test func ordinaryUsersAndAddressesStillLoad() throws {
        let inv = try Scratch().loader().parse(Array(#"""
            {"hosts": [
              {"name": "a", "address": "node-1.example.org", "user": "ada.lovelace"},
              {"name": "b", "address": "fe80::1%eth0", "user": "svc_drover-2"},
              {"name": "c", "address": "192.168.1.31", "user": "Ada_1"}
            ]}
            """#.utf8), file: "hosts.json")
        #expect(inv.hosts.map(\.user) == ["ada.lovelace", "svc_drover-2", "Ada_1"])
        #expect(inv.hosts.map(\.address) == ["node-1.example.org", "fe80::1%eth0", "192.168.1.31"])
    }

    @Test func aRootWithMetacharactersIsKeptAsWrittenAndOneWithControlCharactersIsRefused() throws {
        let s = try Scratch()
        let root = "~/.drover $(touch x);`id`|a&&b 'q' \"d\" *"
        let inv = try s.loader().parse(Array(#"{"hosts": [{"name": "h", "root": \#(JSONText.quote(root))}]}"#.utf8), file: "hosts.json")
        #expect(inv.hosts.first?.root == root)
        for bad in ["~/.drover\ntouch x", "/srv/dr\u{0}over", "~/a\u{7F}"] {
            let found = issues(#"{"hosts": [{"name": "h", "root": \#(JSONText.quote(bad))}]}"#, s)
            #expect(found.count == 1, "\(found)")
            #expect(found.first?.contains("hosts[0].root: root \(JSONText.quote(bad)) contains a control character") == true, "\(found)")
        }
    }
}
