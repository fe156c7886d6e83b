import DroverCore
import Foundation
import Testing
@testable import DroverInventory

/// The coordinator's settings: the `coordinator` section of the inventory and of config.json,
/// the environment, and the precedence between them.
@Suite("Coordinator settings")
struct CoordinatorSettingsTests {
    func inventory(_ coordinator: String, defaults: String = "{}") throws -> Inventory {
        try Scratch().loader().parse(Array("{\"coordinator\": \(coordinator), \"defaults\": \(defaults), \"hosts\": [{\"name\": \"a\"}]}".utf8), file: "/lab/hosts.json")
    }

    func resolved(_ layers: CoordinatorSettingsLayers) -> [CoordinatorSetting: ResolvedSetting] {
        Dictionary(uniqueKeysWithValues: layers.resolve().map { ($0.setting, $0) })
    }

    @Test func theInventorySectionIsRead() throws {
        let inv = try inventory(#"{"dead_after": 3, "lease_ttl": "2h", "stale_policy": "keep-original", "idle_exit": "never", "quarantine": {"failures": 2}}"#)
        #expect(inv.coordinator[.deadAfter] == .seconds(3))
        #expect(inv.coordinator[.leaseTTL] == .seconds(7200))
        #expect(inv.coordinator[.stalePolicy] == .word("keep-original"))
        #expect(inv.coordinator[.idleExit] == .seconds(.infinity))
        #expect(inv.quarantine == QuarantineSettings(failures: 2))
        #expect(inv.coordinator.fields[.deadAfter] == "coordinator.dead_after")
        #expect(inv.coordinator.fields[.quarantineFailures] == "coordinator.quarantine.failures")
    }

    @Test func badValuesAndUnknownKeysNameTheFileAndField() throws {
        let s = try Scratch()
        let m = issues(#"{"coordinator": {"dead_after": 1, "stale_policy": "kill", "lease": "6h", "idle_exit": -1}, "hosts": [{"name": "a"}]}"#, s)
        #expect(m.contains { $0.hasPrefix("hosts.json:") && $0.contains("coordinator.dead_after") && $0.contains("at least 2") }, "\(m)")
        #expect(m.contains { $0.contains("coordinator.stale_policy") && $0.contains("kill-stale") }, "\(m)")
        #expect(m.contains { $0.contains("coordinator.lease") && $0.contains("unknown key") && $0.contains("lease_ttl") }, "\(m)")
        #expect(m.contains { $0.contains("coordinator.idle_exit") && $0.contains("never") }, "\(m)")
        let twice = issues(#"{"coordinator": {"quarantine": false}, "defaults": {"quarantine": true}, "hosts": [{"name": "a"}]}"#, s)
        #expect(twice.contains { $0.contains("coordinator.quarantine") && $0.contains("keep one") }, "\(twice)")
    }

    @Test func theOlderDefaultsQuarantineStillCounts() throws {
        let inv = try inventory("{}", defaults: #"{"quarantine": {"cooldown": "1h"}}"#)
        #expect(inv.quarantine == QuarantineSettings(cooldown: 3600))
        #expect(inv.coordinator.fields[.quarantineCooldown] == "defaults.quarantine.cooldown")
    }

    @Test func theConfigFileHasOnlyACoordinatorSection() throws {
        let ok = try UserConfigFile.parse(Array(#"{"coordinator": {"dead_after": "5s"}}"#.utf8), file: "/home/u/.config/drover/config.json")
        #expect(ok[.deadAfter] == .seconds(5))
        do {
            _ = try UserConfigFile.parse(Array(#"{"coordinater": {"dead_after": 5}}"#.utf8), file: "/home/u/.config/drover/config.json")
            Issue.record("an unknown key was accepted")
        } catch {
            #expect(error.description.contains("/home/u/.config/drover/config.json:1:") && error.description.contains("coordinater") && error.description.contains("coordinator"), "\(error)")
        }
        #expect(UserConfigFile.path(environment: { $0 == "XDG_CONFIG_HOME" ? "/x" : nil }, home: "/home/u") == "/x/drover/config.json")
        #expect(UserConfigFile.path(environment: { _ in nil }, home: "/home/u") == "/home/u/.config/drover/config.json")
    }

    @Test func environmentVariablesAreReadAndCheckedByName() throws {
        let env = ["DROVER_DEAD_AFTER": "4", "DROVER_QUARANTINE_COOLDOWN": "2m", "DROVER_STALE_POLICY": "keep-original"]
        let section = try CoordinatorSection.fromEnvironment { env[$0] }
        #expect(section[.deadAfter] == .seconds(4))
        #expect(section[.quarantineCooldown] == .seconds(120))
        #expect(section[.quarantine] == .on(true), "a quarantine field turns it on")
        do {
            _ = try CoordinatorSection.fromEnvironment { $0 == "DROVER_LEASE_TTL" ? "soon" : nil }
            Issue.record("a bad value was accepted")
        } catch {
            #expect(error.description.contains("DROVER_LEASE_TTL=\"soon\"") && error.description.contains("duration"), "\(error)")
        }
    }

    @Test func flagBeatsEnvironmentBeatsInventoryBeatsConfigBeatsDefault() {
        var layers = CoordinatorSettingsLayers()
        layers.inventoryFile = "/lab/hosts.json"
        layers.configFile = "/home/u/.config/drover/config.json"
        layers.config = CoordinatorSection(values: [.deadAfter: .seconds(5), .leaseTTL: .seconds(60), .stalePolicy: .word("keep-original"), .idleExit: .seconds(30)])
        layers.inventory = CoordinatorSection(values: [.deadAfter: .seconds(4), .leaseTTL: .seconds(120), .stalePolicy: .word("kill-stale")])
        layers.environment = CoordinatorSection(values: [.deadAfter: .seconds(3), .leaseTTL: .seconds(180)])
        layers.flags = CoordinatorSection(values: [.deadAfter: .seconds(2)])
        let r = resolved(layers)
        #expect(r[.deadAfter]?.value == .seconds(2) && r[.deadAfter]?.origin == .flag("--dead-after"))
        #expect(r[.leaseTTL]?.value == .seconds(180) && r[.leaseTTL]?.origin == .environment("DROVER_LEASE_TTL"))
        #expect(r[.stalePolicy]?.value == .word("kill-stale") && r[.stalePolicy]?.origin == .inventory(file: "/lab/hosts.json", field: "coordinator.stale_policy"))
        #expect(r[.idleExit]?.value == .seconds(30) && r[.idleExit]?.origin == .configFile(file: "/home/u/.config/drover/config.json", field: "coordinator.idle_exit"))
        #expect(r[.quarantineFailures]?.value == .count(4) && r[.quarantineFailures]?.origin == .builtIn)
        #expect(r[.deadAfter]?.origin.description == "flag --dead-after")
        #expect(r[.stalePolicy]?.origin.description == "inventory /lab/hosts.json (coordinator.stale_policy)")
    }

    @Test func idleExitDefaultsToNeverOrTenMinutesForACoordinatorACommandStarted() {
        var layers = CoordinatorSettingsLayers()
        #expect(resolved(layers)[.idleExit]?.value == .seconds(.infinity))
        layers.idleExitDefault = .seconds(600)
        #expect(resolved(layers)[.idleExit]?.value == .seconds(600) && resolved(layers)[.idleExit]?.origin == .builtIn)
        layers.config = CoordinatorSection(values: [.idleExit: .seconds(.infinity)])
        #expect(resolved(layers)[.idleExit]?.value == .seconds(.infinity), "a written \"never\" beats the commands' default")
    }

    @Test func quarantineOnOffFollowsTheFirstPlaceThatSaysAnything() {
        var layers = CoordinatorSettingsLayers()
        layers.config = CoordinatorSection(values: [.quarantine: .on(false)])
        #expect(resolved(layers)[.quarantine]?.value == .on(false))
        var inventory = CoordinatorSection()
        inventory.values = [.quarantine: .on(true), .quarantineFailures: .count(2)]
        layers.inventory = inventory
        #expect(resolved(layers)[.quarantine]?.value == .on(true), "a quarantine object in the inventory turns it on over config.json's false")
        #expect(resolved(layers)[.quarantineFailures]?.value == .count(2))
    }

    @Test func valuesAreShownAsWritten() {
        #expect(SettingValue.seconds(3).description == "3 s")
        #expect(SettingValue.seconds(21600).description == "6 h")
        #expect(SettingValue.seconds(600).description == "10 min")
        #expect(SettingValue.seconds(.infinity).description == "never")
        #expect(SettingValue.seconds(2.5).description == "2.5 s")
    }
}
