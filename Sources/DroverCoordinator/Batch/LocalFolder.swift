import Foundation

/// The files of a local folder, for inputs (a folder named in a batch file, an upstream job's results).
enum LocalFolder {
    /// Files under `folder` (not folders), as sorted relative paths; nothing when it does not exist.
    static func files(under folder: String) -> [String] {
        let names = (FileManager.default.enumerator(atPath: folder)?.allObjects as? [String]) ?? []
        return names.filter { name in
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: folder + "/" + name, isDirectory: &isDir) && !isDir.boolValue
        }.sorted()
    }
}
