/// Tokens in an inventory `root`, expanded per host so hosts that share a home (NFS) get a
/// state directory each: `%h` the inventory host name, `%u` the login user, `%%` a `%`.
public enum RootTokens {
    /// The default agent root: one folder per inventory host under `~/.drover`.
    public static let defaultRoot = "~/.drover/%h"

    /// `root` with its tokens replaced; nil when it holds an unknown token or a lone `%`.
    public static func expand(_ root: String, host: String, user: String) -> String? {
        var out = ""
        var it = root.makeIterator()
        while let c = it.next() {
            guard c == "%" else {
                out.append(c)
                continue
            }
            switch it.next() {
            case "h": out += host
            case "u": out += user
            case "%": out += "%"
            default: return nil
            }
        }
        return out
    }

    /// Why `root` cannot be expanded, naming the bad token; nil when it can.
    public static func problem(_ root: String) -> String? {
        guard expand(root, host: "h", user: "u") == nil else { return nil }
        let chars = Array(root)
        var i = 0
        while i < chars.count {
            if chars[i] == "%" {
                guard i + 1 < chars.count else { return "root \"\(root)\" ends with a lone %; write %% for a % sign" }
                if !"hu%".contains(chars[i + 1]) {
                    return "root \"\(root)\" has an unknown token %\(chars[i + 1]); use %h (the host name), %u (the login user) or %% (a % sign)"
                }
                i += 2
            } else {
                i += 1
            }
        }
        return nil
    }
}
