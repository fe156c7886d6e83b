import DroverCoordinator
import DroverCore
import DroverInventory
import DroverProtocol

/// `drover hosts --facts`: runs `drover-agent facts` on each host over SSH (the deployed agent)
/// and reads its one line.
enum HostFactsCollector {
    struct Failure: Error { var message: String }

    static func collect(_ hosts: [HostSpec]) async -> [(String, Result<HostFactsReport, Failure>)] {
        await withTaskGroup(of: (String, Result<HostFactsReport, Failure>).self) { group in
            for h in hosts {
                group.addTask {
                    let request = FactsRequest(commands: h.facts).jsonObject.text
                    let outcome = await AgentRemote.run(on: h, "facts --request " + ShellQuote.quote(request), timeout: 60)
                    guard outcome.ok else { return (h.name, .failure(Failure(message: outcome.output))) }
                    let line = outcome.output.split(separator: "\n").last.map(String.init) ?? ""
                    guard case .facts(let report)? = AgentMessage.parse(line) else {
                        return (h.name, .failure(Failure(message: "the agent printed no facts (\(line.prefix(200))); deploy this drover's agent (drover deploy)")))
                    }
                    return (h.name, .success(report))
                }
            }
            var out: [(String, Result<HostFactsReport, Failure>)] = []
            for await r in group { out.append(r) }
            return out.sorted { $0.0 < $1.0 }
        }
    }

    /// A table of every host's facts: OS, kernel, CPU, GPUs, then one column per inventory fact.
    static func render(_ reports: [HostReport]) -> String {
        let names = Set(reports.flatMap { ($0.facts?.values.keys).map(Array.init) ?? [] } + reports.flatMap { ($0.facts?.errors.keys).map(Array.init) ?? [] }).sorted()
        var rows = [["NAME", "OS RELEASE", "KERNEL", "CPU", "GPUS"] + names.map { $0.uppercased() }]
        for r in reports {
            guard let f = r.facts else {
                rows.append([r.name, "(not collected)", "-", "-", "-"] + names.map { _ in "-" })
                continue
            }
            rows.append([r.name, f.os ?? "-", f.kernel ?? "-", String((f.cpu ?? "-").prefix(40)), f.gpus.isEmpty ? "-" : f.gpus.joined(separator: ",")]
                        + names.map { f.values[$0] ?? (f.errors[$0].map { "(failed: \(String($0.prefix(40))))" } ?? "-") })
        }
        return TextTable.render(rows)
    }
}
