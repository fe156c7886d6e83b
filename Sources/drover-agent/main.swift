import DroverAgent

// The agent is a stub until the agent issue: it only reports its version.
let arguments = CommandLine.arguments.dropFirst()
if arguments.first == "--version" || arguments.first == "version" {
    print("drover-agent \(AgentVersion.version)")
} else {
    print("drover-agent \(AgentVersion.version): only --version is implemented so far")
}
