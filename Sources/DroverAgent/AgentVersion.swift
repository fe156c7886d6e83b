/// The agent's version, shared with the coordinator through the heartbeat.
public enum AgentVersion {
    public static let version = "0.1.0"
}
