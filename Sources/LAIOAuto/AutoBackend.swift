#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import LAIOCore
import LAIOThreads
import LAIOUring
import Synchronization
import SystemPackage

/// The `auto` strategy: io_uring for every kind of operation the running kernel supports,
/// the thread pool for the rest (sendfile, raw system calls, opcodes the kernel lacks), and
/// for everything when io_uring cannot be set up. Some kinds are first tried inline with a
/// form that never waits.
///
/// Both backends push into the one completion queue of the context. Pool handles carry
/// the route tag (see `Handle`'s layout), ring handles never do, so one handle space covers both. Poll sleeps in ppoll on
/// the ring's descriptor and the queue's eventfd, which every pool completion signals: one
/// wait covers both sources.
package final class AutoBackend: Backend, @unchecked Sendable {
    // @unchecked: `ring` and `pool` are thread-safe backends; the route masks are immutable;
    // the rest (demotions, refusals, counters) are atomics.

    package let ring: UringBackend?
    package let pool: ThreadPoolBackend
    /// Why io_uring is not used, when it is not.
    let uringUnavailable: String?
    /// Kinds whose destination is the ring, and kinds tried inline first (bit per kind).
    private let ringKinds: UInt64
    private let inlineKinds: UInt64
    /// Kinds moved from the ring to the pool after io_uring refused a call the pool ran.
    private let demoted = Atomic<UInt64>(0)
    /// Of the demoted kinds, those io_uring refused with EOPNOTSUPP (the others: EINVAL).
    private let demotedNotSupported = Atomic<UInt64>(0)
    private let counters = Counters()
    private let ringRefusal: (@Sendable (Operation) -> Errno?)?

    /// Starts the pool and, unless io_uring is unavailable (ENOSYS, EPERM, ENOMEM at setup)
    /// or switched off, the ring. Other setup errors are thrown.
    /// `threads` nil: the defaults, or `ThreadPoolSettings.withoutUring` when there is no ring.
    package init(settings: AutoSettings, threads: ThreadPoolSettings?, uring: UringSettings,
                 completions: CompletionQueue, cancelSignal: Int32) throws(Errno) {
        var ring: UringBackend? = nil
        var unavailable: String? = nil
        if settings.useUring {
            do throws(Errno) {
                ring = try UringBackend(settings: uring, completions: completions)
            } catch {
                switch error {
                case .noFunction, .notPermitted, .noMemory:
                    unavailable = "io_uring_setup failed with \(error)"
                        + (UringBackend.setupFailureCause(error).map { ": \($0)" } ?? "")
                default:
                    throw error
                }
            }
        } else {
            unavailable = "switched off (AutoSettings.useUring = false)"
        }
        let poolSettings = threads ?? (ring == nil ? ThreadPoolSettings.withoutUring : ThreadPoolSettings.besideUring)
        self.pool = try ThreadPoolBackend(settings: poolSettings, completions: completions, tagHandles: true,
                                          cancelSignal: cancelSignal)
        self.ring = ring
        self.uringUnavailable = unavailable
        var ringKinds: UInt64 = 0
        var inlineKinds: UInt64 = 0
        for kind in OperationKind.allCases {
            if let ring, ring.runs(kind) { ringKinds |= kind.bit }
            if settings.inlineFirst.contains(kind) && AutoSettings.inlineCapable.contains(kind) { inlineKinds |= kind.bit }
        }
        self.ringKinds = ringKinds
        self.inlineKinds = inlineKinds
        self.ringRefusal = settings.ringRefusalForTesting
    }

    deinit { shutdown() }

    // MARK: Routing

    package func submit(_ operation: Operation, claimed: Bool) throws(Errno) -> Outcome {
        var kind = operation.kind
        var typed = operation
        if kind == .syscall {
            // A raw number with a typed form takes that form's route.
            typed = operation.canonical
            kind = typed.kind
        }
        let bit = kind.bit
        var wouldBlock = false
        var noNonBlockingForm = false
        if inlineKinds & bit != 0 {
            if let result = runInline(typed, noNonBlockingForm: &noNonBlockingForm) {
                counters.inline.increment()
                return .completed(result)
            }
            counters.inlineMisses.increment()
            wouldBlock = true
        }
        if ringKinds & bit != 0, demoted.load(ordering: .relaxed) & bit == 0, let ring {
            // io_uring writes a pipe or socket's stream and ignores the offset of a positioned
            // write, where pwrite(2) answers ESPIPE: asked first. (Positioned reads are tried
            // inline, where preadv2 answers ESPIPE; with inline-first switched off they read
            // the stream, as on `uring`: a probe there would cost the cached-read path a call.)
            if Self.positionedWrites & bit != 0, let refusal = Self.positionOnStream(typed) {
                return .completed(.failure(refusal))
            }
            if let ringRefusal, let refusal = ringRefusal(typed) {
                return try rerunOnPool(operation, kind: kind, refused: refusal, claimed: claimed)
            }
            // A read of a file without a non-blocking form (FUSE, network file systems) goes
            // to the pool: io_uring has no lazy path for it (its own non-blocking try could
            // wait in this thread, so it would go to an io-wq worker anyway), and io_uring's
            // asynchronous direct reads of a FUSE file stop at the size the kernel had
            // cached where pread(2) asks the server. The pool runs pread(2) itself, with a
            // worker of its own for every such call.
            if noNonBlockingForm { return try submitToPool(operation, lazy: false, claimed: claimed) }
            let outcome = try ring.submit(typed, claimed: claimed)
            switch outcome {
            case .inProgress:
                counters.uringBackground.increment()
                return outcome
            case let .completed(.failure(error)) where error == .notSupported || error == .invalidArgument:
                return try rerunOnPool(operation, kind: kind, refused: error, claimed: claimed)
            case .completed:
                counters.uringSynchronous.increment()
                return outcome
            }
        }
        // A call whose non-blocking form just said it would block skips the pool's lazy window.
        return try submitToPool(operation, lazy: !wouldBlock, claimed: claimed)
    }

    /// Runs a call io_uring refused on the pool, once. Unless the pool answers at once with
    /// the same error (then the caller's arguments were at fault), io_uring cannot do here
    /// what the system call does for this kind, and the kind moves to the pool for good. A
    /// call still running on the pool counts as run: at worst a kind moves for nothing,
    /// which costs speed, never a wrong answer.
    private func rerunOnPool(_ operation: Operation, kind: OperationKind, refused: Errno, claimed: Bool) throws(Errno) -> Outcome {
        counters.rerunOnThreads.increment()
        let outcome = try submitToPool(operation, claimed: claimed)
        if outcome != .completed(.failure(refused)) {
            if refused == .notSupported { demotedNotSupported.bitwiseOr(kind.bit, ordering: .relaxed) }
            demoted.bitwiseOr(kind.bit, ordering: .relaxed)
        }
        return outcome
    }

    @inline(__always)
    private func submitToPool(_ operation: Operation, lazy: Bool = true, claimed: Bool) throws(Errno) -> Outcome {
        let outcome = try pool.submit(operation, lazy: lazy, claimed: claimed)
        if case .inProgress = outcome {
            counters.threadsBackground.increment()
        } else {
            counters.threadsSynchronous.increment()
        }
        return outcome
    }

    private static let positionedWrites = OperationKind.pwrite.bit | OperationKind.pwritev.bit

    /// ESPIPE when `operation` is a positioned write (offset >= 0) of a descriptor without a
    /// position (a pipe, a socket, a FIFO): a pwritev(2) of no vectors makes exactly
    /// pwrite(2)'s check (the file's FMODE_PWRITE) and returns 0 before writing anything or
    /// touching the file (no position lock, no time stamps). One cheap system call per
    /// positioned write that goes to the ring.
    private static func positionOnStream(_ operation: Operation) -> Errno? {
        let fd: Int32, offset: Int64
        switch operation {
        case let .pwrite(descriptor, _, position) where position >= 0: (fd, offset) = (descriptor, position)
        case let .pwritev(descriptor, _, position) where position >= 0: (fd, offset) = (descriptor, position)
        default: return nil
        }
        // Other answers (EBADF) are left to the ring, which gives the same.
        return pwritev(fd, nil, 0, off_t(offset)) < 0 && errno == ESPIPE ? Errno(rawValue: ESPIPE) : nil
    }

    /// Tries `operation` with its non-blocking form. Returns the result when that form
    /// answered for good; nil when the call would block (or cannot be answered inline
    /// exactly as the blocking call would answer it) and must go on to its route.
    /// `noNonBlockingForm` is set when the file has no non-blocking reads (EOPNOTSUPP).
    @inline(__always)
    private func runInline(_ operation: Operation, noNonBlockingForm: inout Bool) -> Result<Int, Errno>? {
        let answer: Int
        let wanted: Int
        let fd: Int32
        // The buffers belong to the operation, which the caller keeps alive until submit returns.
        switch operation {
        // preadv2 reads at the file position for offset -1, where pread answers EINVAL:
        // negative offsets go to the route, which answers as pread does.
        case let .pread(descriptor, buffer, offset) where offset >= 0:
            (fd, wanted) = (descriptor, buffer.count)
            answer = laio_shim_pread_nowait(fd, buffer.baseAddress, buffer.count, offset)
        case let .preadv(descriptor, iovecs, offset) where offset >= 0:
            (fd, wanted) = (descriptor, iovecs.reduce(0) { $0 &+ $1.iov_len })
            answer = laio_shim_preadv_nowait(fd, iovecs.baseAddress, Int32(clamping: iovecs.count), offset)
        case let .recv(fd, buffer, flags):
            // recv(2) returns whatever is there, so any count is its answer, except with
            // MSG_WAITALL, whose partial answer the blocking call would not give. Exact on
            // every file system: a socket's data is the socket's, never a file system's
            // cache, and MSG_DONTWAIT changes only whether the call waits for it.
            guard flags & Int32(MSG_WAITALL) == 0 else { return nil }
            answer = laio_shim_recv_nowait(fd, buffer.baseAddress, buffer.count, flags)
            return answer == -Int(EAGAIN) ? nil : Result(kernelReturn: answer)
        case let .openat2(dirfd, path, how):
            // Exact on file systems that revalidate names (FUSE, NFS, SMB): RESOLVE_CACHED
            // still runs each dentry's and inode's revalidation, which on those answers
            // "cannot without sleeping" (ECHILD) for anything not fresh, and the open then
            // answers EAGAIN and goes to the route; it never takes a stale entry as fresh.
            answer = laio_shim_openat2_cached(dirfd, path, how)
            return answer == -Int(EAGAIN) ? nil : Result(kernelReturn: answer)
        case let .fstat(fd, buffer):
            // Answered inline only where statx's AT_STATX_DONT_SYNC gives fstat's own answer;
            // on a file system that revalidates attributes with its server (FUSE, NFS, SMB)
            // the shim answers EAGAIN and fstat runs in full on the route.
            answer = laio_shim_fstat_cached(fd, buffer)
            return answer == -Int(EAGAIN) ? nil : Result(kernelReturn: answer)
        default:
            return nil
        }
        // preadv2 with RWF_NOWAIT is exact on file systems that revalidate (FUSE, NFS, SMB):
        // none of them takes RWF_NOWAIT (EOPNOTSUPP below), so their reads, and the checks
        // of size and mtime that come with them, run in full on the route.
        // A positional read is answered inline when it got everything or hit the end of
        // the file; a partial read (part of the range in memory) is left to the route,
        // which reads the whole range again, so callers never see a short read that the
        // blocking call would not give. EAGAIN (not in memory), EOPNOTSUPP (no RWF_NOWAIT
        // for this file) and EINVAL (which the route answers exactly) go on too.
        if answer == wanted || answer == 0 { return .success(answer) }
        if answer > 0 { return nil }
        switch Int32(-answer) {
        case EOPNOTSUPP:
            // tmpfs answers RWF_NOWAIT with EOPNOTSUPP, yet io_uring reads it inline on
            // kernels that take a file without a device for one that never waits (Debian
            // 12's 6.1; scripts/test-kernels): only a file with storage goes to a worker.
            noNonBlockingForm = laio_shim_is_memory_file(fd) != 1
            return nil
        case EAGAIN, EINVAL: return nil
        default: return .failure(Errno(rawValue: Int32(-answer)))
        }
    }

    // MARK: Introspection

    /// The route of `kind` now.
    package func route(for kind: OperationKind) -> RoutePlan {
        let inline = inlineKinds & kind.bit != 0
        if ringKinds & kind.bit != 0 {
            if demoted.load(ordering: .relaxed) & kind.bit != 0 {
                return RoutePlan(inlineFirst: inline, destination: .threads,
                                 refusedByUring: demotedNotSupported.load(ordering: .relaxed) & kind.bit != 0
                                    ? .notSupported : .invalidArgument)
            }
            return RoutePlan(inlineFirst: inline, destination: .uring)
        }
        return RoutePlan(inlineFirst: inline, destination: .threads)
    }

    package var details: String {
        "auto: " + (ring.map { "io_uring (flags \($0.setupFlags), \($0.fileWorkersDetails)) for what it runs, " } ?? "")
            + "thread pool (\(pool.workerCounts.live) workers of at most \(pool.settings.maximumWorkers), idle spin \(pool.settings.idleSpin.nanoseconds / 1000) µs) for "
            + (uringUnavailable.map { "everything; io_uring not used: \($0)" } ?? "the rest")
            + (route(for: .pread).inlineFirst ? "; cached reads tried inline first" : "")
    }

    package var uringUnavailableReason: String? { uringUnavailable }

    package var statistics: RouteStatistics? {
        var s = RouteStatistics()
        s.inline = counters.inline.value
        s.inlineMisses = counters.inlineMisses.value
        s.uringSynchronous = counters.uringSynchronous.value
        s.uringBackground = counters.uringBackground.value
        s.threadsSynchronous = counters.threadsSynchronous.value
        s.threadsBackground = counters.threadsBackground.value
        s.rerunOnThreads = counters.rerunOnThreads.value
        return s
    }

    // MARK: Cancelling, waiting, closing

    package func cancel(_ handle: Handle) throws(Errno) {
        if handle.isRouteTagged {
            try pool.cancel(handle)
        } else if let ring {
            try ring.cancel(handle)
        } else {
            throw .noSuchFileOrDirectory
        }
    }

    package func service() -> Duration? {
        let fromPool = pool.service()
        guard let fromRing = ring?.service() else { return fromPool }
        return fromPool.map { min($0, fromRing) } ?? fromRing
    }

    package func shutdown() {
        ring?.shutdown()
        pool.shutdown()
    }

    package var notificationDescriptor: Int32? { ring?.notificationDescriptor }

    /// The ring's, when io_uring is in use: pool completions are pushed by the workers.
    package var harvestDescriptor: Int32? { ring?.harvestDescriptor }

    @discardableResult
    package func waitForCompletions(in queue: CompletionQueue, nanoseconds: Int64?) -> Bool {
        if let ring {
            // The ring's wait covers the queue's eventfd, which pool completions signal.
            return ring.waitForCompletions(in: queue, nanoseconds: nanoseconds)
        }
        return Housekeeping.waitReadable(queue.notificationDescriptor, nanoseconds: nanoseconds)
    }
}

/// The counters behind `RouteStatistics`, each on its own cache line so that threads
/// counting different routes do not contend.
private final class Counters: Sendable {
    let inline = PaddedCounter()
    let inlineMisses = PaddedCounter()
    let uringSynchronous = PaddedCounter()
    let uringBackground = PaddedCounter()
    let threadsSynchronous = PaddedCounter()
    let threadsBackground = PaddedCounter()
    let rerunOnThreads = PaddedCounter()
}

/// A relaxed counter in an allocation of its own, padded to a cache line's size, so that
/// two counters rarely share a line.
private final class PaddedCounter: Sendable {
    private let count = Atomic<Int>(0)
    private let padding = (0, 0, 0, 0, 0, 0)

    @inline(__always)
    func increment() { count.wrappingAdd(1, ordering: .relaxed) }

    var value: Int { count.load(ordering: .relaxed) }
}
