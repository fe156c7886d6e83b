import DroverCore
import Foundation
import Testing
@testable import DroverInventory

/// `root` tokens: hosts whose homes are shared (NFS) get a state directory each.
@Suite("Inventory: root tokens")
struct RootTokenTests {
    @Test func theDefaultRootIsOneFolderPerHost() throws {
        let s = try Scratch()
        let inv = try s.loader().parse(Array(#"""
            {"hosts": [{"name": "a", "address": "10.0.0.1"}, {"name": "b", "address": "10.0.0.1"},
                       {"name": "here", "transport": "local"}]}
            """#.utf8), file: "hosts.json")
        #expect(inv.hosts.map(\.root) == ["~/.drover/a", "~/.drover/b", s.home + "/.drover/here"])
    }

    @Test func hostUserAndPercentAreExpandedPerHost() throws {
        let s = try Scratch()
        let inv = try s.loader().parse(Array(#"""
            {"defaults": {"root": "/scratch/%u/drover-%h", "user": "ada"},
             "hosts": [{"name": "a"}, {"name": "b", "user": "bob"}, {"name": "c", "root": "~/d/100%%-%h"}]}
            """#.utf8), file: "hosts.json")
        #expect(inv.hosts.map(\.root) == ["/scratch/ada/drover-a", "/scratch/bob/drover-b", "~/d/100%-c"])
    }

    @Test(arguments: [("~/.drover/%x", "unknown token %x"), ("~/.drover/%", "lone %"), ("~/%H", "unknown token %H")])
    func anUnknownTokenIsRefusedNamingIt(root: String, says: String) throws {
        let found = issues(#"{"hosts": [{"name": "h", "root": \#(JSONText.quote(root))}]}"#, try Scratch())
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.contains("hosts[0].root: root \"\(root)\"") == true && found.first?.contains(says) == true, "\(found)")
    }

    @Test func expansion() {
        #expect(RootTokens.expand("~/.drover/%h", host: "h1", user: "u") == "~/.drover/h1")
        #expect(RootTokens.expand("/x/%u/%h/%%h", host: "h1", user: "ada") == "/x/ada/h1/%h")
        #expect(RootTokens.expand("/x/%", host: "h", user: "u") == nil)
        #expect(RootTokens.problem("/x/%h/%u/%%") == nil)
    }
}
