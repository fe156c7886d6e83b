/// Samples the host's load averages and memory for each heartbeat; one implementation per
/// platform (`LoadSampler+Linux`, `LoadSampler+Darwin`).
protocol LoadSampler: Sendable {
    func sample() -> HostLoad
}

extension Platform {
    /// The sampler of the running platform (nothing known elsewhere).
    static let loadSampler: any LoadSampler = {
        #if os(Linux)
        return LinuxLoadSampler()
        #elseif os(macOS)
        return DarwinLoadSampler()
        #else
        return UnknownLoadSampler()
        #endif
    }()
}

/// A platform that says nothing of its load.
struct UnknownLoadSampler: LoadSampler {
    func sample() -> HostLoad { HostLoad() }
}
