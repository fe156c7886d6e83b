import DroverAgent
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

exit(AgentCLI.main(CommandLine.arguments))
