#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims

/// The `struct open_how` of `openat2(2)`, for `Operation.openat2`.
public typealias OpenHow = open_how

extension OpenHow {
    /// `flags` and `mode` as for `openat(2)`, plus how the path may be resolved.
    public init(flags: Int32, mode: mode_t = 0, resolve: ResolveFlags = []) {
        self.init()
        self.flags = UInt64(UInt32(bitPattern: flags))
        self.mode = UInt64(mode)
        self.resolve = resolve.rawValue
    }
}

/// `openat2(2)`'s `RESOLVE_*` bits: how a path lookup may go.
public struct ResolveFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Never leave the starting directory: no `..` above it, no absolute paths or symlinks
    /// (`EXDEV`).
    public static let beneath = ResolveFlags(rawValue: UInt64(RESOLVE_BENEATH))
    /// Treat the starting directory as `/` for the lookup.
    public static let inRoot = ResolveFlags(rawValue: UInt64(RESOLVE_IN_ROOT))
    /// Follow no symbolic link at all (`ELOOP`).
    public static let noSymlinks = ResolveFlags(rawValue: UInt64(RESOLVE_NO_SYMLINKS))
    /// Follow no "magic" link such as `/proc/self/fd/N` (`ELOOP`).
    public static let noMagicLinks = ResolveFlags(rawValue: UInt64(RESOLVE_NO_MAGICLINKS))
    /// Cross no mount point (`EXDEV`).
    public static let noCrossingMounts = ResolveFlags(rawValue: UInt64(RESOLVE_NO_XDEV))
    /// Only from the kernel's caches: `EAGAIN` if the lookup would need the disk.
    public static let cached = ResolveFlags(rawValue: UInt64(RESOLVE_CACHED))
}
