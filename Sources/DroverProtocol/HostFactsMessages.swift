import DroverCore

/// The GPUs an attempt asks for and gets: the coordinator says how many and which devices the
/// host offers (nil: the ones the agent detects); the agent picks free ones when it accepts
/// the attempt and records them here (`assigned`) in the attempt's stored spec.
public struct GPUGrant: Sendable, Equatable {
    public var count: Int
    /// The host's devices jobs may use, from the inventory; nil: the agent's detection.
    public var devices: [String]?
    /// The devices the agent gave this attempt (empty until it accepted it).
    public var assigned: [String]

    public init(count: Int, devices: [String]? = nil, assigned: [String] = []) {
        self.count = count
        self.devices = devices
        self.assigned = assigned
    }

    public var jsonObject: JSONObject {
        var o = JSONObject()
        o.set("count", count)
        if let devices { o.set("devices", devices) }
        if !assigned.isEmpty { o.set("assigned", assigned) }
        return o
    }

    static func parse(_ node: JSONNode, path: String, diagnostics d: ConfigDiagnostics) -> GPUGrant? {
        guard var r = ObjectReader(node, path: path, diagnostics: d) else { return nil }
        guard let count = r.int("count"), count >= 1 else {
            d.report("needs a positive `count`", path: path, at: node.position)
            return nil
        }
        var g = GPUGrant(count: count)
        if let n = r.node("devices") {
            if let list = n.stringArray { g.devices = list } else { d.report("must be an array of device ids", path: path + ".devices", at: n.position) }
        }
        if let n = r.node("assigned") {
            if let list = n.stringArray { g.assigned = list } else { d.report("must be an array of device ids", path: path + ".assigned", at: n.position) }
        }
        r.finish()
        return g
    }

    /// The environment that confines a job to its devices (CUDA, ROCm and HIP).
    public var environment: [String: String] {
        let list = assigned.joined(separator: ",")
        return ["CUDA_VISIBLE_DEVICES": list, "ROCR_VISIBLE_DEVICES": list, "HIP_VISIBLE_DEVICES": list, "DROVER_GPUS": list]
    }
}

/// The coordinator asks an agent for its facts: the inventory's commands, each run with
/// `/bin/sh -c` under `timeout` seconds; handled by `drover-agent link` (never the inbox).
public struct FactsRequest: Sendable, Equatable {
    public var commands: [String: String]
    public var timeout: Double

    public init(commands: [String: String], timeout: Double = 10) {
        self.commands = commands
        self.timeout = timeout
    }

    public var jsonObject: JSONObject {
        var o = JSONObject()
        o.set("commands", commands)
        o.set("timeout", timeout)
        return o
    }

    public static func parse(_ node: JSONNode) -> Result<FactsRequest, WireError> {
        guard let commands = node["commands"]?.stringMap else { return .failure(WireError("a facts request needs \"commands\": an object of shell lines")) }
        let timeout = node["timeout"]?.doubleValue ?? 10
        guard timeout > 0 else { return .failure(WireError("a facts request's \"timeout\" must be positive seconds")) }
        return .success(FactsRequest(commands: commands, timeout: timeout))
    }
}

/// What an agent reports of its host: OS release, kernel, CPU model, detected GPUs, and the
/// output of each requested fact (or why there is none).
public struct HostFactsReport: Sendable, Equatable {
    public var os: String?
    public var kernel: String?
    public var cpu: String?
    /// GPU devices found (`/dev/nvidiaN`, `nvidia-smi -L`); empty when none.
    public var gpus: [String]
    /// Each requested fact's output (its first line, trimmed).
    public var values: [String: String]
    /// Facts that could not be collected, with why (`exit 127: sh: gp: not found`, `timed out`).
    public var errors: [String: String]

    public init(os: String? = nil, kernel: String? = nil, cpu: String? = nil, gpus: [String] = [], values: [String: String] = [:], errors: [String: String] = [:]) {
        self.os = os
        self.kernel = kernel
        self.cpu = cpu
        self.gpus = gpus
        self.values = values
        self.errors = errors
    }

    /// Every fact a job may require (the built-in `os`, `kernel`, `cpu`, `gpus` and the requested ones).
    public var all: [String: String] {
        var out = values
        if let os { out["os"] = out["os"] ?? os }
        if let kernel { out["kernel"] = out["kernel"] ?? kernel }
        if let cpu { out["cpu"] = out["cpu"] ?? cpu }
        if !gpus.isEmpty { out["gpus"] = out["gpus"] ?? String(gpus.count) }
        return out
    }

    public var jsonObject: JSONObject {
        var o = JSONObject()
        o.set("os", os)
        o.set("kernel", kernel)
        o.set("cpu", cpu)
        o.set("gpus", gpus)
        o.set("values", values)
        o.set("errors", errors)
        return o
    }

    public static func parse(_ node: JSONNode) -> HostFactsReport {
        HostFactsReport(os: node["os"]?.stringValue, kernel: node["kernel"]?.stringValue, cpu: node["cpu"]?.stringValue,
                        gpus: node["gpus"]?.stringArray ?? [], values: node["values"]?.stringMap ?? [:], errors: node["errors"]?.stringMap ?? [:])
    }

    /// The line an agent sends up its link.
    public var line: String { "{\"facts\":" + jsonObject.text + "}" }
}
