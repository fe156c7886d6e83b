import Foundation

// drover-soak: see docs/reliability.md (started by soak/run, which builds and starts the testbed).

let options: SoakOptions
do { options = try SoakOptions(Array(CommandLine.arguments.dropFirst())) } catch {
    FileHandle.standardError.write(Data("drover-soak: error: \(error)\n".utf8))
    exit(2)
}
Interrupt.install()
let soak: Soak
do { soak = try Soak(options) } catch {
    FileHandle.standardError.write(Data("drover-soak: error: \(error) (seed \(options.seed); replay with: soak/run --minutes \(Soak.number(options.minutes)) --seed \(options.seed))\n".utf8))
    exit(1)
}
exit(soak.run())
