/// The agent's half of the wire protocol (attempt specs, commands, link messages) lives in
/// `DroverProtocol`, shared with the coordinator; every agent file sees it.
@_exported import DroverProtocol
