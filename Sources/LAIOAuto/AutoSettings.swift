import LAIOCore
import SystemPackage

/// Settings of the `auto` strategy.
public struct AutoSettings: Sendable, Equatable {
    /// Kinds first tried on the caller's thread with a form of the call that never waits
    /// (pread, preadv: preadv2 with RWF_NOWAIT; recv: MSG_DONTWAIT; fstat: statx with
    /// AT_STATX_DONT_SYNC, only on file systems where that is fstat's own answer: a file on
    /// FUSE, NFS or SMB, whose fstat asks the server, goes to its route (io_uring would send
    /// every STATX to its worker threads);
    /// openat2 with O_NONBLOCK and without O_CREAT/O_TRUNC/O_TMPFILE: RESOLVE_CACHED added,
    /// the same attempt io_uring makes inline, without the trip through the ring). Only when that answers
    /// "would block" does the call go on to its route (io_uring or the pool). Kinds outside
    /// `AutoSettings.inlineCapable` are ignored.
    public var inlineFirst: Set<OperationKind>
    /// Whether to use io_uring at all; `false` runs everything on the thread pool, as on a
    /// machine without io_uring (for comparisons).
    public var useUring: Bool

    /// The kinds that have a non-blocking form `auto` knows how to try inline.
    public static let inlineCapable: Set<OperationKind> = [.pread, .preadv, .recv, .fstat, .openat2]

    /// For tests: an answer io_uring is made to give for the calls it matches, to exercise
    /// the re-run on the pool. Not part of the API; nil outside tests.
    package var ringRefusalForTesting: (@Sendable (Operation) -> Errno?)? = nil

    /// By default every kind with a non-blocking form is tried inline first (`inlineCapable`):
    /// a cached pread then costs one preadv2, not a round trip through the ring.
    public init(inlineFirst: Set<OperationKind> = AutoSettings.inlineCapable, useUring: Bool = true) {
        self.inlineFirst = inlineFirst
        self.useUring = useUring
    }

    public static func == (a: AutoSettings, b: AutoSettings) -> Bool {
        a.inlineFirst == b.inlineFirst && a.useUring == b.useUring
    }
}
