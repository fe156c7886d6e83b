/// What a Linux executable needs from the host it runs on, read from its ELF headers: the
/// program interpreter (`PT_INTERP`), the shared libraries (`DT_NEEDED`) and the newest
/// glibc symbol version it asks for (`DT_VERNEED`). A fully static executable has none.
///
/// Only 64-bit little-endian ELF is read (x86-64, AArch64); anything else is `unreadable`.
public struct ELFLinkage: Sendable, Equatable {
    /// The dynamic loader it asks for, e.g. `/lib64/ld-linux-x86-64.so.2`.
    public var interpreter: String?
    /// Shared libraries it needs, e.g. `libswiftCore.so`, `libc.so.6`.
    public var needed: [String] = []
    /// The newest `GLIBC_x.y` version among its symbol version needs, e.g. "2.35".
    public var glibc: String?

    /// No interpreter and no shared library: runs on any kernel of its architecture.
    public var isStatic: Bool { interpreter == nil && needed.isEmpty }

    /// The Swift runtime libraries it needs (a build without `-static-executable`/`--static-swift-stdlib`).
    public var swiftRuntime: [String] { needed.filter { $0.hasPrefix("libswift") || $0.hasPrefix("libFoundation") || $0.hasPrefix("libdispatch") } }

    /// Reads the linkage of an ELF image; nil when it is not a 64-bit little-endian ELF.
    public static func read(_ b: [UInt8]) -> ELFLinkage? {
        guard b.count >= 64, b[0] == 0x7F, b[1] == 0x45, b[2] == 0x4C, b[3] == 0x46, b[4] == 2, b[5] == 1 else { return nil }
        let r = Reader(bytes: b)
        guard let phoff = r.u64(0x20), let phentsize = r.u16(0x36), let phnum = r.u16(0x38), phentsize >= 56 else { return nil }
        var linkage = ELFLinkage()
        var loads: [(vaddr: UInt64, offset: UInt64, size: UInt64)] = []
        var dynamic: (offset: UInt64, size: UInt64)?
        for i in 0..<Int(phnum) {
            let at = Int(phoff) + i * Int(phentsize)
            guard let type = r.u32(at), let offset = r.u64(at + 8), let vaddr = r.u64(at + 16), let size = r.u64(at + 32) else { return nil }
            switch type {
            case 1: loads.append((vaddr, offset, size))
            case 2: dynamic = (offset, size)
            case 3: linkage.interpreter = r.cString(Int(offset)) ?? "?"
            default: break
            }
        }
        guard let dynamic else { return linkage }
        var neededOffsets: [UInt64] = []
        var strtab: UInt64?, verneed: UInt64?, verneedCount: UInt64 = 0
        var at = Int(dynamic.offset)
        while at + 16 <= Int(dynamic.offset + dynamic.size), let tag = r.u64(at), let value = r.u64(at + 8), tag != 0 {
            switch tag {
            case 1: neededOffsets.append(value)
            case 5: strtab = value
            case 0x6FFF_FFFE: verneed = value
            case 0x6FFF_FFFF: verneedCount = value
            default: break
            }
            at += 16
        }
        func fileOffset(_ vaddr: UInt64) -> Int? {
            loads.first { vaddr >= $0.vaddr && vaddr < $0.vaddr + $0.size }.map { Int($0.offset + (vaddr - $0.vaddr)) }
        }
        guard let strtab, let strings = fileOffset(strtab) else {
            linkage.needed = neededOffsets.map { _ in "?" }
            return linkage
        }
        linkage.needed = neededOffsets.map { r.cString(strings + Int($0)) ?? "?" }
        // Elf64_Verneed { u16 version, u16 cnt, u32 file, u32 aux, u32 next }, each with `cnt`
        // Elf64_Vernaux { u32 hash, u16 flags, u16 other, u32 name, u32 next }.
        var versions: [String] = []
        if let verneed, var entry = fileOffset(verneed) {
            for _ in 0..<min(verneedCount, 64) {
                guard let count = r.u16(entry + 2), let aux = r.u32(entry + 8), let next = r.u32(entry + 12) else { break }
                var a = entry + Int(aux)
                for _ in 0..<min(Int(count), 256) {
                    guard let name = r.u32(a + 8), let anext = r.u32(a + 12) else { break }
                    if let v = r.cString(strings + Int(name)), v.hasPrefix("GLIBC_") { versions.append(String(v.dropFirst(6))) }
                    if anext == 0 { break }
                    a += Int(anext)
                }
                if next == 0 { break }
                entry += Int(next)
            }
        }
        linkage.glibc = versions.filter { $0.first?.isNumber == true }.max { !VersionNumber.atLeast($0, $1) }
        return linkage
    }

    private struct Reader {
        let bytes: [UInt8]
        func u16(_ at: Int) -> UInt16? { int(at, 2).map { UInt16($0) } }
        func u32(_ at: Int) -> UInt32? { int(at, 4).map { UInt32($0) } }
        func u64(_ at: Int) -> UInt64? { int(at, 8) }
        private func int(_ at: Int, _ n: Int) -> UInt64? {
            guard at >= 0, at + n <= bytes.count else { return nil }
            var v: UInt64 = 0
            for i in (0..<n).reversed() { v = v << 8 | UInt64(bytes[at + i]) }
            return v
        }
        func cString(_ at: Int) -> String? {
            guard at >= 0, at < bytes.count else { return nil }
            var end = at
            while end < bytes.count, bytes[end] != 0, end - at < 4096 { end += 1 }
            return String(decoding: bytes[at..<end], as: UTF8.self)
        }
    }
}

/// Dotted version numbers ("2.36", "2.4.1").
public enum VersionNumber {
    /// `have` >= `need`, part by part ("2.36" >= "2.31").
    public static func atLeast(_ have: String, _ need: String) -> Bool {
        let h = have.split(separator: ".").compactMap { Int($0) }, n = need.split(separator: ".").compactMap { Int($0) }
        for i in 0..<max(h.count, n.count) {
            let a = i < h.count ? h[i] : 0, b = i < n.count ? n[i] : 0
            if a != b { return a > b }
        }
        return true
    }
}
