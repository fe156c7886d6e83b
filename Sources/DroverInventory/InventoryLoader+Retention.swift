import DroverCore

/// A host's (or `defaults`') `retention`: how long its agent keeps collected attempts and how
/// much disk its root may use, e.g. `{"keep": "7d", "max_size": "2GiB"}` (docs/inventory.md).
extension InventoryLoader {
    func readRetention(_ n: JSONNode, path: String, diagnostics d: ConfigDiagnostics) -> RetentionPolicy? {
        guard var r = ObjectReader(n, path: path, diagnostics: d) else { return nil }
        var policy = RetentionPolicy()
        var ok = true
        if let k = r.node("keep") {
            if let seconds = k.stringValue.flatMap(RetentionPolicy.duration) ?? k.doubleValue.flatMap({ $0 >= 0 ? $0 : nil }) {
                policy.keep = seconds
            } else {
                d.report("keep must be a duration such as \"7d\", \"12h\" or \"30m\" (or seconds); it is how long an agent keeps a collected attempt's folder", path: r.childPath("keep"), at: k.position)
                ok = false
            }
        }
        for (key, minimum) in [("max_size", Int64(1 << 20)), ("segment_size", Int64(4096))] {
            guard let s = r.node(key) else { continue }
            let bytes = s.stringValue.flatMap(RetentionPolicy.size) ?? s.intValue.map(Int64.init)
            guard let bytes, bytes >= minimum else {
                let what = key == "max_size" ? "the most disk the agent's root may use, e.g. \"2GiB\" or \"500MiB\" (at least 1 MiB)"
                                             : "the size at which the event log is closed as a segment, e.g. \"16MiB\" (at least 4 KiB)"
                d.report("\(key) must be a size: \(what)", path: r.childPath(key), at: s.position)
                ok = false
                continue
            }
            if key == "max_size" { policy.maxSize = bytes } else { policy.segmentSize = bytes }
        }
        r.finish()
        return ok ? policy : nil
    }
}

/// The inventory's `coordinator` section (docs/inventory.md): the settings of every coordinator
/// that uses this inventory, below options and environment variables (docs/settings.md).
extension InventoryLoader {
    func readCoordinator(_ node: JSONNode?, olderQuarantine: CoordinatorSection?, diagnostics d: ConfigDiagnostics) -> CoordinatorSection {
        var section = olderQuarantine ?? CoordinatorSection()
        guard let node else { return section }
        let written = CoordinatorSection.read(node, path: "coordinator", diagnostics: d)
        if olderQuarantine != nil, let field = written.fields[.quarantine] {
            d.report("quarantine is also set in defaults.quarantine; keep one (coordinator.quarantine is its place now)", path: field, at: node.position)
        }
        section.values.merge(written.values) { _, new in new }
        section.fields.merge(written.fields) { _, new in new }
        return section
    }
}
