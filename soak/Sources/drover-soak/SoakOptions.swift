import Foundation

/// `drover-soak --minutes M [--seed S] [--hosts N] --drover PATH --testbed-script PATH --testbed-dir DIR [--keep-state]`.
struct SoakOptions {
    var minutes: Double = 2
    /// Without `--seed`, a fresh one (printed, so the run can be replayed).
    var seed = UInt64.random(in: 1...999_999)
    /// The number of testbed hosts the run expects (soak/run starts that testbed).
    var hosts: Int?
    var drover = ""
    var testbedScript = ""
    var testbedDir = ""
    var keepState = false

    static let usage = "usage: drover-soak --minutes M [--seed S] [--hosts N] --drover PATH --testbed-script PATH --testbed-dir DIR [--keep-state]"

    init(_ args: [String]) throws {
        var i = 0
        func value() throws -> String {
            guard i + 1 < args.count else { throw SoakFailure("\(args[i]) needs a value\n\(Self.usage)") }
            i += 1
            return args[i]
        }
        while i < args.count {
            switch args[i] {
            case "--minutes":
                let v = try value()
                guard let m = Double(v), m > 0 else { throw SoakFailure("--minutes must be a positive number, not \(v)") }
                minutes = m
            case "--seed":
                let v = try value()
                guard let s = UInt64(v) else { throw SoakFailure("--seed must be a whole number ≥ 0, not \(v)") }
                seed = s
            case "--hosts":
                let v = try value()
                guard let n = Int(v), n >= 3 else { throw SoakFailure("--hosts must be a whole number ≥ 3, not \(v)") }
                hosts = n
            case "--drover": drover = try value()
            case "--testbed-script": testbedScript = try value()
            case "--testbed-dir": testbedDir = try value()
            case "--keep-state": keepState = true
            default: throw SoakFailure("unknown argument \(args[i])\n\(Self.usage)")
            }
            i += 1
        }
        if drover.isEmpty || testbedScript.isEmpty || testbedDir.isEmpty { throw SoakFailure("--drover, --testbed-script and --testbed-dir are required\n\(Self.usage)") }
    }
}
