// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Drover",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "drover", targets: ["drover"]),
        .executable(name: "drover-agent", targets: ["drover-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The coordinator's log (not the agent's: it stays dependency-free and static).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // `drover serve` only (DroverWeb): never linked into the agent. No traits: the
        // swift-configuration support is not used and costs build time.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
    ],
    targets: [
        // libssh2 from the system (apt libssh2-1-dev, brew libssh2).
        .systemLibrary(
            name: "CLibSSH2",
            pkgConfig: "libssh2",
            providers: [.apt(["libssh2-1-dev"]), .brew(["libssh2"])]
        ),
        // SQLite from the system (apt libsqlite3-dev; part of macOS): the coordinator's journal.
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]
        ),
        // Models, JSON with source positions, hashing, shell quoting, atomic files.
        // Shared by the agent, so it must stay free of ICU-pulling Foundation APIs.
        .target(name: "DroverCore", dependencies: ["CDroverSys"]),
        // The wire protocol: every message and file format that crosses between coordinator and
        // agent (attempt spec, commands, lease, link messages), with its version. Foundation-free.
        .target(name: "DroverProtocol", dependencies: ["DroverCore"]),
        // The SSH layer: one libssh2 session per host on its own thread, async API.
        .target(name: "DroverSSH", dependencies: ["CLibSSH2", "DroverCore"]),
        // hosts.json and ~/.ssh/config resolution.
        .target(name: "DroverInventory", dependencies: ["DroverCore"]),
        // The coordinator: journal, scheduling, host links, liveness, deploy.
        .target(name: "DroverCoordinator", dependencies: ["DroverCore", "DroverProtocol", "DroverSSH", "DroverInventory", "CSQLite", .product(name: "Logging", package: "swift-log")]),
        // `drover serve`: the dashboard and HTTP API over the journal (Hummingbird).
        .target(name: "DroverWeb", dependencies: ["DroverCoordinator", "DroverCore", .product(name: "Hummingbird", package: "hummingbird")]),
        // One file per `drover` subcommand.
        .target(
            name: "DroverCommands",
            dependencies: [
                "DroverCoordinator", "DroverWeb", "DroverInventory", "DroverCore", "CDroverSys",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // fork/exec, subreaper and wait-status helpers the agent cannot call from Swift.
        .target(name: "CDroverSys"),
        // The per-host agent. Depends on no SSH code.
        .target(name: "DroverAgent", dependencies: ["DroverCore", "DroverProtocol", "CDroverSys"]),
        .executableTarget(name: "drover", dependencies: ["DroverCommands"]),
        .executableTarget(name: "drover-agent", dependencies: ["DroverAgent"]),
        // Benchmarks (bench/): print figures, never part of the pass/fail of tests.
        .executableTarget(name: "drover-bench", dependencies: ["DroverAgent", "DroverCore", "DroverCoordinator"], path: "bench/Sources/drover-bench"),
        // Fault-injection soak (soak/): a mixed job stream under seeded faults, invariants checked.
        .executableTarget(name: "drover-soak", dependencies: ["DroverCoordinator", "DroverCore", "DroverProtocol"], path: "soak/Sources/drover-soak"),
        // Seeded input mutation for the robustness tests (not part of any product).
        .target(name: "DroverTestSupport", path: "Tests/DroverTestSupport"),
        .testTarget(name: "DroverCoreTests", dependencies: ["DroverCore"]),
        .testTarget(name: "DroverProtocolTests", dependencies: ["DroverProtocol", "DroverCore"]),
        .testTarget(name: "DroverInventoryTests", dependencies: ["DroverInventory", "DroverCore", "DroverTestSupport"]),
        .testTarget(name: "DroverSSHTests", dependencies: ["DroverSSH", "DroverCore"]),
        .testTarget(name: "DroverCoordinatorTests", dependencies: ["DroverCoordinator", "DroverTestSupport"]),
        .testTarget(name: "DroverAgentTests", dependencies: ["DroverAgent", "DroverCore", "DroverTestSupport"]),
        // The commands' logic that needs no testbed (followers, the coordinator's lock).
        .testTarget(name: "DroverCommandsTests", dependencies: ["DroverCommands", "DroverCoordinator", "DroverInventory", "DroverCore", "DroverTestSupport"]),
        .testTarget(
            name: "DroverIntegrationTests",
            dependencies: ["DroverSSH", "DroverInventory", "DroverCoordinator", "DroverCommands", "DroverCore", "DroverWeb"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
