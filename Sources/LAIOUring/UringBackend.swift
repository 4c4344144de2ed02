#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLiburing
import CLinuxShims
import LAIOCore
import SystemPackage

/// The `uring` backend: LAIO's laziness from io_uring itself.
///
/// `submit` prepares one submission entry, hands it to the kernel and looks at the
/// completion ring at once. The kernel first issues each request without blocking; when
/// that finishes it (a cached read, a socket with data waiting), the completion is already
/// posted and `submit` returns it as `.completed`. Otherwise the request waits on a poll or
/// in the kernel's worker pool and `submit` answers `.inProgress`. Completions of other
/// operations found on the way go to the context's completion queue in ring order.
///
/// One lock serialises the ring (submission, reaping, cancellation, shutdown), so a context
/// may be used from several threads.
///
/// A call outlives the thread that submitted it. io_uring ties each request to its
/// submitting thread: once that thread is gone, the kernel fails its requests that are not
/// done (`ECANCELED` for one waiting on a poll when its event comes, or queued for io-wq
/// when the thread exits; `EFAULT` for one about to be issued again from the thread's task
/// work). Such a failure that nobody asked for is not reported: the backend's resubmission thread, which lives as long as the
/// context, issues the same submission entry again under the same handle, and only that
/// run's result is reported (see `isKernelCancellation` for why running it again is safe).
///
/// Waiting: the ring's own descriptor is readable exactly while its completion ring holds
/// entries, so poll sleeps in ppoll(2) on it and on the completion queue's eventfd. The
/// kernel wakes the ring's pollers only when someone sleeps there, so a call that completes
/// inline pays nothing for notification. `notificationDescriptor` (an epoll instance over
/// the same two descriptors) is made on first use; while it exists the kernel wakes it for
/// every completion.
package final class UringBackend: Backend, @unchecked Sendable {
    // @unchecked: the ring and `RingState` (with the slots) are touched only while `state`'s
    // lock is held; the other stored properties are immutable after init.

    /// The setup flags the kernel accepted (from `UringSettings.flagLadder`).
    package let setupFlags: UringSetupFlags
    /// The kernel's IORING_FEAT_* bits for this ring.
    package let features: UInt32
    /// Whether the kernel keeps completions that overflow the completion ring (IORING_FEAT_NODROP).
    package var keepsOverflowingCompletions: Bool { features & IORING_FEAT_NODROP != 0 }
    /// Submission and completion ring sizes as the kernel set them.
    package let submissionEntries: Int
    package let completionEntries: Int
    /// The most operations outstanding at once (see `UringSettings.capacity`).
    package let capacity: Int

    let completions: CompletionQueue
    /// Which descriptors name files on slow storage (their reads and writes skip the try in this thread).
    let slowStorage = SlowStorage()
    /// Allocated in init, released (io_uring_queue_exit, then freed) only in deinit, after
    /// shutdown has reaped every request, so no thread can still use it.
    let ring: UnsafeMutablePointer<io_uring>
    /// The kinds this kernel's io_uring runs (from its probe).
    let opcodes: UringOpcodes
    /// What became of `UringSettings.maximumFileWorkers`.
    package let fileWorkers: FileWorkers

    package enum FileWorkers: Equatable, Sendable {
        case kernelDefault
        case set(Int, previous: Int)
        case refused(Errno)
    }
    /// The ring's descriptor, open until deinit.
    let ringFD: Int32
    /// Everything that changes after init, under one lock.
    let state: Locked<RingState>

    struct RingState {
        /// The slots of operations, with their allocator.
        var slots: UringSlots
        /// Operations whose completion has not been reaped from the ring yet.
        var inFlight = 0
        /// The epoll instance behind `notificationDescriptor`, once made.
        var epollFD: Int32 = -1
        /// `shutdown` has begun: submits throw EBADF.
        var closed = false
        /// `shutdown` has finished: nothing is in flight and the ring is no longer used.
        var tornDown = false
        /// Slots whose request the kernel cancelled because its submitting thread exited,
        /// waiting for the resubmission thread (at most `capacity`: each is an in-flight slot).
        var resubmissions = FIFO<Int32>(initialCapacity: 16)
        /// The resubmission thread, started on first need, and the eventfd that wakes it.
        var resubmitter: pthread_t? = nil
        var resubmitterWake: Int32 = -1
    }

    /// Sets up the ring. Throws the errno of io_uring_setup when no flag set of the ladder
    /// is accepted (ENOSYS: no io_uring; EPERM: seccomp or kernel.io_uring_disabled;
    /// ENOMEM: RLIMIT_MEMLOCK on kernels before 5.12, or no memory for the slots),
    /// `EINVAL` for bad settings.
    package init(settings: UringSettings, completions: CompletionQueue) throws(Errno) {
        guard settings.entries > 0, settings.entries <= 32_768, settings.completionEntries >= 0,
              settings.completionEntries <= 65_536, settings.capacity > 0, settings.capacity <= UringSettings.maximumCapacity,
              !settings.flagLadder.isEmpty, settings.flagLadder.allSatisfy({ $0.isDisjoint(with: UringSetupFlags.refused) }),
              settings.maximumFileWorkers.map({ $0 > 0 && $0 <= UringSettings.fileWorkerLimit }) ?? true
        else { throw .invalidArgument }
        self.completions = completions

        // Slot memory first, for the capacity asked (a kernel without NODROP may lower it).
        guard var slots = UringSlots(capacity: settings.capacity) else { throw .noMemory }

        let ring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        ring.initialize(to: io_uring())
        let cqWanted = settings.completionEntries > 0 ? settings.completionEntries : 4 * settings.entries
        var lastError = Errno.invalidArgument
        var taken: UringSetupFlags? = nil
        var params = io_uring_params()
        for flags in settings.flagLadder {
            params = io_uring_params()
            params.flags = flags.union([.cqSize, .clamp]).rawValue
            params.cq_entries = UInt32(cqWanted)
            let result = io_uring_queue_init_params(UInt32(settings.entries), ring, &params)
            if result == 0 {
                taken = flags
                break
            }
            lastError = Errno(rawValue: -result)
            // Only an unknown flag is worth another try; no io_uring, a ban or no memory is final.
            if lastError != .invalidArgument { break }
        }
        guard let taken else {
            ring.deallocate()
            slots.deallocate()
            throw lastError
        }
        self.ring = ring
        self.setupFlags = taken
        self.features = params.features
        self.submissionEntries = Int(ring.pointee.sq.ring_entries)
        self.completionEntries = Int(ring.pointee.cq.ring_entries)
        let noDrop = params.features & IORING_FEAT_NODROP != 0
        let capacity = min(noDrop ? settings.capacity : min(settings.capacity, Int(ring.pointee.cq.ring_entries)),
                           settings.slotLimitForTesting ?? .max)
        self.capacity = capacity

        var supported = [Bool](repeating: false, count: Int(IORING_OP_LAST.rawValue))
        if let probe = io_uring_get_probe_ring(ring) {
            for op in supported.indices { supported[op] = io_uring_opcode_supported(probe, Int32(op)) != 0 }
            io_uring_free_probe(probe)
        }
        self.opcodes = UringOpcodes(supported: supported)

        // io-wq's two limits: [0] bounded (file work), [1] unbounded (sockets, pipes); 0
        // leaves one as it is. The kernel keeps them for the ring and applies them to every
        // thread that submits to it. After the call the array holds the old limits.
        if let workers = settings.maximumFileWorkers {
            var limits: [UInt32] = [UInt32(workers), 0]
            let answer = io_uring_register_iowq_max_workers(ring, &limits)
            self.fileWorkers = answer == 0 ? .set(workers, previous: Int(limits[0])) : .refused(Errno(rawValue: -answer))
        } else {
            self.fileWorkers = .kernelDefault
        }

        self.ringFD = ring.pointee.ring_fd
        slots.limit = capacity
        state = Locked(RingState(slots: slots))
    }

    deinit {
        shutdown()
        // Safe: shutdown returned only after every request's completion was reaped, so the
        // kernel holds no pointer into the slots or the statx area any more.
        let epollFD = state.withLock { state -> Int32 in
            state.slots.deallocate()
            return state.epollFD
        }
        io_uring_queue_exit(ring)
        ring.deallocate()
        if epollFD >= 0 { _ = Glibc.close(epollFD) }
    }

    /// Whether this kernel's io_uring runs every operation of `kind`.
    @inline(__always)
    package func runs(_ kind: OperationKind) -> Bool { opcodes.runs(kind) }

    package func route(for kind: OperationKind) -> RoutePlan {
        RoutePlan(inlineFirst: false, destination: runs(kind) ? .uring : .unsupported)
    }

    package var details: String {
        "io_uring: flags \(setupFlags), \(submissionEntries) SQ / \(completionEntries) CQ entries, capacity \(capacity), "
            + fileWorkersDetails
    }

    /// The io-wq bound for file work, in words.
    package var fileWorkersDetails: String {
        switch fileWorkers {
        case .kernelDefault: "file workers: the kernel's default"
        case let .set(workers, previous): "file workers: up to \(workers) (kernel default \(previous))"
        case let .refused(error): "file workers: the kernel's default (IORING_REGISTER_IOWQ_MAX_WORKERS: \(error))"
        }
    }
}
