import DroverCore

/// A host's (or `defaults`') `gpus` and `facts` (docs/inventory.md#gpus, #facts).
extension InventoryLoader {
    /// `gpus`: a count (`2`: devices 0 and 1) or the device indexes (`[0, 2]`, or strings such as `"GPU-…"` UUIDs).
    func readGPUs(_ n: JSONNode, path: String, diagnostics d: ConfigDiagnostics) -> [String]? {
        if let count = n.intValue {
            guard count >= 0, count <= 64 else {
                d.report("gpus must be a count from 0 to 64, or a list of device indexes such as [0, 1]", path: path, at: n.position)
                return nil
            }
            return (0..<count).map(String.init)
        }
        guard let items = n.arrayValue else {
            d.report("gpus must be a count (2) or a list of device indexes ([0, 1]); leave it out to use what the agent detects", path: path, at: n.position)
            return nil
        }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            let text = item.intValue.flatMap { $0 >= 0 ? String($0) : nil } ?? item.stringValue
            guard let text, !text.isEmpty, !text.contains(","), !text.unicodeScalars.contains(where: Self.isControl), !out.contains(text) else {
                d.report("a GPU device must be an index (0, 1, …) or a device id without commas, each listed once", path: "\(path)[\(i)]", at: item.position)
                return nil
            }
            out.append(text)
        }
        return out
    }

    /// `facts`: names (they become labels) and the shell line whose output is the fact, e.g. `{"python": "python3 -V"}`.
    func readFacts(_ n: JSONNode, path: String, diagnostics d: ConfigDiagnostics) -> [String: String]? {
        guard let entries = n.objectMembers else {
            d.report("facts must be an object: a name for each fact and the command that prints it, e.g. {\"python\": \"python3 -V\"}", path: path, at: n.position)
            return nil
        }
        var out: [String: String] = [:]
        for m in entries {
            let key = m.key, value = m.value
            guard HostFacts.isValidName(key) else {
                d.report("fact name \(JSONText.quote(key)) may use only letters, digits, '-', '_', '.' (at most 64)", path: path + "." + key, at: value.position)
                continue
            }
            guard let command = value.stringValue, command.contains(where: { $0 != " " }) else {
                d.report("must be the shell line that prints the fact, e.g. \"python3 -V\"", path: path + "." + key, at: value.position)
                continue
            }
            out[key] = command
        }
        return out
    }
}
