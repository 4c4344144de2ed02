#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import Synchronization

/// Which descriptors name files on storage whose reads and writes cannot be tried without
/// waiting: FUSE, NFS, SMB, 9P, Ceph, AFS (their servers answer; no page-cache-only path
/// is promised). io_uring's non-blocking first try of a read there can wait for the server
/// in the submitting thread (FUSE asks for the file's attributes before it looks at the
/// page cache), so such calls go straight to a worker instead.
///
/// A descriptor is looked up the first time it is seen (a statx of its mount's id, which
/// asks no server, and the file system's magic cached per mount; on kernels before 6.8,
/// which have no unique mount id, an fstatfs, which a FUSE or NFS server answers), and the
/// answer is kept until the library closes the number or hands it out from an open. A
/// number closed and reused outside the library keeps its old answer until then: a local
/// file taken for a slow one has its reads and writes go to a worker (slower, same
/// answers); a slow file taken for a local one has them tried in the caller (the wait this
/// avoids, on each call until the number is forgotten). A lookup that fails for another
/// reason than EBADF counts as local (the call itself then answers as it would).
package final class SlowStorage: @unchecked Sendable {
    // @unchecked: the table's bytes are atomics; the allocation lives as long as the object.
    private static let tracked = 1 << 16
    private static let unknown: UInt8 = 0
    private static let local: UInt8 = 1
    private static let slow: UInt8 = 2
    private let kinds: UnsafeMutablePointer<Atomic<UInt8>>

    package init() {
        kinds = .allocate(capacity: Self.tracked)
        for index in 0..<Self.tracked { (kinds + index).initialize(to: Atomic(Self.unknown)) }
    }

    deinit {
        kinds.deinitialize(count: Self.tracked)
        kinds.deallocate()
    }

    /// Whether `fd` names a file on such storage. A number seen before costs one load.
    @inline(__always)
    package func isSlow(_ fd: Int32) -> Bool {
        guard fd >= 0 else { return false }
        guard fd < Self.tracked else { return Self.probe(fd) == Self.slow }
        let known = kinds[Int(fd)].load(ordering: .relaxed)
        if known != Self.unknown { return known == Self.slow }
        let kind = Self.probe(fd)
        kinds[Int(fd)].store(kind, ordering: .relaxed)
        return kind == Self.slow
    }

    /// Forgets what is known of `fd`: it is being closed, or was just handed out.
    @inline(__always)
    package func forget(_ fd: Int32) {
        if fd >= 0 && fd < Self.tracked { kinds[Int(fd)].store(Self.unknown, ordering: .relaxed) }
    }

    private static func probe(_ fd: Int32) -> UInt8 {
        switch laio_shim_is_slow_storage(fd) {
        case 1: slow
        case -EBADF: unknown  // no file now: the call itself answers; look again next time
        default: local
        }
    }
}
