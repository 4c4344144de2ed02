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
    // @unchecked: the ring, the slots and `RingState` are touched only while `state`'s lock
    // is held; the other stored properties are immutable after init.

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

    private let completions: CompletionQueue
    /// Which descriptors name files on slow storage (their reads and writes skip the try in this thread).
    private let slowStorage = SlowStorage()
    /// Allocated in init, released (io_uring_queue_exit, then freed) only in deinit, after
    /// shutdown has reaped every request, so no thread can still use it.
    private let ring: UnsafeMutablePointer<io_uring>
    private let slots: UnsafeMutablePointer<UringSlot>
    /// `struct statx` storage, 256 bytes per slot, for stat calls run as STATX.
    private let statxArea: UnsafeMutableRawPointer
    /// The kinds this kernel's io_uring runs, one bit per kind (`runs`).
    private let runnable: UInt64
    /// What became of `UringSettings.maximumFileWorkers`.
    package let fileWorkers: FileWorkers

    package enum FileWorkers: Equatable, Sendable {
        case kernelDefault
        case set(Int, previous: Int)
        case refused(Errno)
    }
    private let ringFD: Int32
    private let state: Locked<RingState>

    /// A stack of free slot indices (`RingState.freeCount` deep); touched under the lock.
    private let freeSlots: UnsafeMutablePointer<Int32>
    /// One `UringBackgroundRecord` per slot; touched under the lock, freed in deinit.
    private let backgroundRecords: UnsafeMutablePointer<UringBackgroundRecord>

    private struct RingState {
        /// Entries in `freeSlots`: slots freed by reaping, reused first.
        var freeCount = 0
        /// Slots below this index have been used at least once.
        var fresh: Int32 = 0
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

    private static let statxSize = 256
    /// The kernel's largest single read or write (MAX_RW_COUNT); longer requests are
    /// shortened to it by read(2) and friends, and by this backend in the same way.
    private static let maxTransfer = 0x7fff_f000

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
        // calloc: UringSlot is a trivial type whose all-zero bit pattern is its initial value
        // (generation 0, not in flight, no fix-up, null pointers), so zeroed memory is a valid
        // array of them; its pages, and those of the statx buffers and the background
        // records (likewise trivial), cost memory only once used.
        precondition(_isPOD(UringSlot.self) && _isPOD(UringBackgroundRecord.self))
        let slotMemory = calloc(settings.capacity, MemoryLayout<UringSlot>.stride)
        let statxMemory = calloc(settings.capacity, Self.statxSize)
        let freeMemory = calloc(settings.capacity, MemoryLayout<Int32>.stride)
        let recordMemory = calloc(settings.capacity, MemoryLayout<UringBackgroundRecord>.stride)
        guard let slotMemory, let statxMemory, let freeMemory, let recordMemory else {
            free(slotMemory); free(statxMemory); free(freeMemory); free(recordMemory)
            throw .noMemory
        }

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
            free(slotMemory); free(statxMemory); free(freeMemory); free(recordMemory)
            throw lastError
        }
        self.ring = ring
        self.setupFlags = taken
        self.features = params.features
        self.submissionEntries = Int(ring.pointee.sq.ring_entries)
        self.completionEntries = Int(ring.pointee.cq.ring_entries)
        let noDrop = params.features & IORING_FEAT_NODROP != 0
        self.capacity = min(noDrop ? settings.capacity : min(settings.capacity, completionEntries),
                            settings.slotLimitForTesting ?? .max)

        var supported = [Bool](repeating: false, count: Int(IORING_OP_LAST.rawValue))
        if let probe = io_uring_get_probe_ring(ring) {
            for op in supported.indices { supported[op] = io_uring_opcode_supported(probe, Int32(op)) != 0 }
            io_uring_free_probe(probe)
        }
        self.runnable = Self.runnableKinds(supported: supported)

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
        slots = slotMemory.bindMemory(to: UringSlot.self, capacity: settings.capacity)
        statxArea = statxMemory
        freeSlots = freeMemory.bindMemory(to: Int32.self, capacity: settings.capacity)
        backgroundRecords = recordMemory.bindMemory(to: UringBackgroundRecord.self, capacity: settings.capacity)
        state = Locked(RingState())
    }

    deinit {
        shutdown()
        // Safe: shutdown returned only after every request's completion was reaped, so the
        // kernel holds no pointer into the slots or the statx area any more.
        free(slots)  // trivial type: nothing to deinitialize
        free(freeSlots)
        free(backgroundRecords)  // trivial type too
        free(statxArea)
        io_uring_queue_exit(ring)
        ring.deallocate()
        let epollFD = state.withLock { $0.epollFD }
        if epollFD >= 0 { _ = Glibc.close(epollFD) }
    }

    /// An epoll instance over the completion queue's eventfd and the ring, made on first
    /// use. `nil` only if it cannot be made (then poll still works; the error is EMFILE or
    /// ENOMEM, and the queue's eventfd is the fallback).
    package var notificationDescriptor: Int32? {
        state.withLock { state -> Int32? in
            if state.epollFD < 0 {
                let fd = laio_shim_epoll_pair(completions.notificationDescriptor, ringFD)
                if fd < 0 { return nil }
                state.epollFD = fd
            }
            return state.epollFD
        }
    }

    /// Sleeps on the ring's descriptor (readable while completions are in the ring) and the
    /// queue's eventfd. After shutdown only the queue is left to wait on.
    @discardableResult
    package func waitForCompletions(in queue: CompletionQueue, nanoseconds: Int64?) -> Bool {
        if state.withLock({ $0.tornDown }) {
            return Housekeeping.waitReadable(queue.notificationDescriptor, nanoseconds: nanoseconds)
        }
        // The ring's descriptor stays open until deinit, so this is safe even if
        // shutdown runs meanwhile: it then simply never becomes readable.
        return Housekeeping.waitReadable(queue.notificationDescriptor, ringFD, nanoseconds: nanoseconds)
    }

    // MARK: - Submission

    package func submit(_ operation: Operation, claimed: Bool) throws(Errno) -> Outcome {
        try submit(operation, toWorker: false, claimed: claimed)
    }

    /// `submit`, with `toWorker` sending the request straight to an io-wq worker
    /// (IOSQE_ASYNC) instead of letting the kernel try it non-blocking in the caller first.
    /// For reads of files that have no non-blocking form (preadv2 answers RWF_NOWAIT with
    /// EOPNOTSUPP: FUSE, some network file systems): io_uring's own first try of those can
    /// wait for the storage in the caller's thread. On FUSE with the page cache on, it asks
    /// for the file's attributes synchronously there (milliseconds on slow storage), and
    /// that wait, interrupted by io_uring's own task-work notification, can make the read
    /// fail with EINTR.
    ///
    /// With `claimed`, the call is claimed for its task (see `Backend.submit(_:claimed:)`).
    package func submit(_ operation: Operation, toWorker: Bool, claimed: Bool = false) throws(Errno) -> Outcome {
        let toWorker = toWorker || sendsToWorker(operation)
        let outcome = state.withLock { state -> Result<Outcome, Errno> in
            guard !state.closed else { return .failure(.badFileDescriptor) }
            // The credit is looked at now and taken only if the call goes to the background,
            // so an inline completion costs no atomic update.
            guard completions.hasCredit, let slot = allocateSlot(&state) else {
                return .failure(.resourceTemporarilyUnavailable)
            }
            guard let entry = nextEntry() else {
                releaseSlot(slot, &state)
                return .failure(.resourceTemporarilyUnavailable)
            }
            if let error = prepare(operation, slot: slot, into: &entry.pointee) {
                // Give the entry back: liburing publishes its local tail to the kernel only
                // when it submits, and nothing was submitted since nextEntry() took it.
                ring.pointee.sq.sqe_tail &-= 1
                releaseSlot(slot, &state)
                return .success(.completed(.failure(error)))
            }
            if toWorker { entry.pointee.flags |= UInt8(1) << UInt8(IOSQE_ASYNC_BIT) }  // IOSQE_ASYNC
            let handle = Handle(slot: Int(slot), generation: slots[Int(slot)].generation)
            entry.pointee.user_data = handle.rawValue
            slots[Int(slot)].inFlight = true
            state.inFlight += 1
            submitPending()
            // The entry is read again only under this lock, before any other is prepared.
            let own = takeOwnCompletion(handle.rawValue, entry: entry, &state)
                ?? reap(&state, looking: handle.rawValue, entry: entry)
            if let own, own != Self.interruptedInline {
                return .success(.completed(Result(kernelReturn: own)))
            }
            // Only a reap under this lock can see its completion, so the credit is in place
            // before the completion can reach the queue (and poll give it back).
            completions.take()
            if claimed { completions.claim(handle) }
            // What running it again needs, should its thread exit first: the entry as the
            // kernel took it (nothing has written the ring's copy since prepare, under this
            // lock) and the thread's mark. Only calls that go to the background pay for this.
            backgroundRecords[Int(slot)] = UringBackgroundRecord(entry: entry.pointee, submitter: laio_shim_thread_mark_retain())
            if own != nil {
                // Issued in this thread, the read or write waited there and was interrupted
                // (`isReadOrWrite`): it did nothing, so it goes to the background and
                // the resubmission thread issues it again, straight to a worker.
                scheduleResubmission(handle.rawValue, kernelReturn: -Int(EINTR), &state)
            }
            return .success(.inProgress(handle))
        }
        completions.resumeDeferred()
        return try outcome.get()
    }

    /// Whether `operation` reads or writes a file on slow storage (`SlowStorage`), where
    /// io_uring's own non-blocking first try could wait in this thread. A close forgets the
    /// descriptor's kind.
    @inline(__always)
    private func sendsToWorker(_ operation: Operation) -> Bool {
        switch operation {
        case let .read(fd, _), let .pread(fd, _, _), let .write(fd, _), let .pwrite(fd, _, _),
             let .readv(fd, _), let .preadv(fd, _, _), let .writev(fd, _), let .pwritev(fd, _, _):
            return slowStorage.isSlow(fd)
        case let .close(fd):
            slowStorage.forget(fd)
            return false
        default:
            return false
        }
    }

    /// The fast path of an inline completion: when the ring holds exactly one completion
    /// and it is `own`'s, consume it and return its result. Otherwise leave the ring as it is.
    /// `interruptedInline` instead of a result: the call is an interrupted read or write
    /// (`isReadOrWrite`), consumed from the ring but not finished; its slot is still
    /// in flight.
    @inline(__always)
    private func takeOwnCompletion(_ own: UInt64, entry ownEntry: UnsafePointer<io_uring_sqe>,
                                   _ state: inout RingState) -> Int? {
        guard io_uring_cq_ready(ring) == 1 else { return nil }
        let entry = ring.pointee.cq.cqes + Int(ring.pointee.cq.khead.pointee & ring.pointee.cq.ring_mask)
        guard entry.pointee.user_data == own else { return nil }
        if entry.pointee.res == -EINTR, Self.isReadOrWrite(ownEntry.pointee.opcode) {
            io_uring_cq_advance(ring, 1)
            return Self.interruptedInline
        }
        let result = finish(own, kernelReturn: Int(entry.pointee.res), &state)
        io_uring_cq_advance(ring, 1)
        return result
    }

    /// A free submission entry (its old contents are left; every prep function sets all
    /// fields). When the ring is full (entries the kernel pushed back are still waiting),
    /// tries once to hand them over first.
    private func nextEntry() -> UnsafeMutablePointer<io_uring_sqe>? {
        if let sqe = io_uring_get_sqe(ring) { return sqe }
        submitPending()
        return io_uring_get_sqe(ring)
    }

    /// Queues an IORING_OP_ASYNC_CANCEL for `handle`, as a request of the backend's own
    /// (user_data 0). False when the submission ring has no room for it.
    private func requestCancel(of handle: Handle) -> Bool {
        guard let entry = nextEntry() else { return false }
        io_uring_prep_cancel64(entry, handle.rawValue, 0)
        entry.pointee.user_data = 0
        return true
    }

    /// Hands waiting submission entries to the kernel. On EBUSY/EAGAIN (the kernel is short
    /// of completion space or memory) they stay in the ring, already counted as in flight,
    /// and the next submit or poll hands them over.
    private func submitPending() {
        while io_uring_sq_ready(ring) > 0 {
            let result = io_uring_submit(ring)
            if result == -EINTR { continue }
            return
        }
    }

    // MARK: - Completions

    /// Moves every completion in the ring to the completion queue, except the one with
    /// `user_data == own`, whose result it returns (or `interruptedInline`, as
    /// `takeOwnCompletion`; `ownEntry` is its submission entry). Called with the lock held.
    @discardableResult
    private func reap(_ state: inout RingState, looking own: UInt64 = 0,
                      entry ownEntry: UnsafePointer<io_uring_sqe>? = nil) -> Int? {
        var found: Int? = nil
        while true {
            var ready = io_uring_cq_ready(ring)
            if ready == 0 {
                // Completions the kernel kept in its overflow list, or task work it holds
                // for this thread, reach the ring only when the kernel is entered.
                let flags = ring.pointee.sq.kflags.pointee
                guard flags & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN) != 0 else { break }
                _ = io_uring_get_events(ring)
                ready = io_uring_cq_ready(ring)
                if ready == 0 { break }
            }
            let head = ring.pointee.cq.khead.pointee
            let mask = ring.pointee.cq.ring_mask
            for i in 0..<ready {
                let entry = ring.pointee.cq.cqes + Int((head &+ i) & mask)
                let data = entry.pointee.user_data
                // user_data 0 marks requests of the backend's own (cancellations).
                guard data != 0 else { continue }
                if data != own, isKernelCancellation(data, kernelReturn: Int(entry.pointee.res), state) {
                    scheduleResubmission(data, kernelReturn: Int(entry.pointee.res), &state)
                    continue
                }
                if data == own, entry.pointee.res == -EINTR, let ownEntry, Self.isReadOrWrite(ownEntry.pointee.opcode) {
                    found = Self.interruptedInline
                } else if data == own {
                    found = finish(data, kernelReturn: Int(entry.pointee.res), &state)
                } else {
                    let result = finishBackground(data, kernelReturn: Int(entry.pointee.res), &state)
                    completions.push(Completion(handle: Handle(rawValue: data), kernelReturn: result), deferringResumption: true)
                }
            }
            // Only now may the kernel reuse the entries.
            io_uring_cq_advance(ring, ready)
        }
        return found
    }

    /// Applies the operation's fix-up to the kernel's answer and frees its slot.
    @inline(__always)
    private func finish(_ data: UInt64, kernelReturn value: Int, _ state: inout RingState) -> Int {
        let slot = Int32(truncatingIfNeeded: Handle(rawValue: data).slot)
        let record = slots + Int(slot)
        var result = value
        switch record.pointee.fixup {
        case .none:
            break
        case .stat:
            if value >= 0 {
                laio_shim_statx_to_stat(statx(slot), record.pointee.target!.assumingMemoryBound(to: stat.self))
            }
        case .timeout:
            // A timeout that expires reports ETIME; nanosleep reports 0.
            if value == -Int(ETIME) { result = 0 }
        case .addressLength:
            if value >= 0 {
                record.pointee.target!.assumingMemoryBound(to: socklen_t.self).pointee = record.pointee.message.msg_namelen
            }
        case .spliceOffsets:
            if value > 0 {
                record.pointee.target?.assumingMemoryBound(to: Int64.self).pointee += Int64(value)
                record.pointee.target2?.assumingMemoryBound(to: Int64.self).pointee += Int64(value)
            }
        case .connectResult:
            // A connect finished by polling its socket: POLLOUT came, and the socket's
            // pending error (0: connected) is connect's answer, as in connect(2).
            if value >= 0 { result = -Int(laio_shim_socket_error(backgroundRecords[Int(slot)].entry.fd)) }
        case .newDescriptor:
            // A number handed out again names a new file: its storage is looked up afresh.
            if value >= 0 { slowStorage.forget(Int32(truncatingIfNeeded: value)) }
        }
        record.pointee.inFlight = false
        state.inFlight -= 1
        releaseSlot(slot, &state)
        return result
    }

    // MARK: - Calls whose thread exited

    /// `finish` for a call that went to the background: its thread's mark is let go too.
    private func finishBackground(_ data: UInt64, kernelReturn value: Int, _ state: inout RingState) -> Int {
        let record = backgroundRecords + Handle(rawValue: data).slot
        laio_shim_thread_mark_release(record.pointee.submitter)
        record.pointee.submitter = nil
        return finish(data, kernelReturn: value, &state)
    }

    /// What `takeOwnCompletion` and `reap` give for the caller's own read or write that
    /// the kernel answered with EINTR: not a result (no kernel answer is this negative).
    private static let interruptedInline = Int.min

    /// Whether `opcode` is a read or a write (READ, READV, WRITE, WRITEV): the kinds whose
    /// EINTR is never reported as it is, whatever thread submitted them. io_uring issues
    /// such a request first in the submitting thread, and on a file system that does not
    /// honour IOCB_NOWAIT (FUSE with the page cache on asks its server for the file's
    /// attributes, and for data not cached, synchronously) it waits there, inside
    /// io_uring_enter; a signal or io_uring's own task-work notification (another request
    /// of this thread completing meanwhile) then interrupts the wait, FUSE sends its server
    /// an interrupt, and the read fails with EINTR though nobody interrupted the caller. An
    /// interrupted read or write transferred nothing (a partial transfer is reported as its
    /// count), so it is issued again, straight to an io-wq worker (IOSQE_ASYNC), which no
    /// task work or signal of the caller interrupts. A `cancel` or `close` still gets the
    /// kernel's answer, and a call is issued again at most four times.
    @inline(__always)
    private static func isReadOrWrite(_ opcode: UInt8) -> Bool {
        let code = UInt32(opcode)
        return code == IORING_OP_READ.rawValue || code == IORING_OP_READV.rawValue
            || code == IORING_OP_WRITE.rawValue || code == IORING_OP_WRITEV.rawValue
    }

    /// Whether a completion is the kernel's failure of a request that nobody cancelled: an
    /// EINTR of a read or write from any thread (`isReadOrWrite`), or an answer because
    /// its submitting thread exited before the request was done (the thread's mark says it
    /// exited: its pthread key destructor runs before the kernel tears the thread down).
    /// The kernel gives these answers only for a request that did nothing, so running it
    /// again is safe:
    /// - `ECANCELED`, any kind: a request waiting on a poll (reads and recvs of pipes and
    ///   sockets without data, sends into full buffers, accepts without a connection) is
    ///   removed before its retry ran, and a request queued for io-wq is dropped before a
    ///   worker took it (a close there has not closed yet). A request that had done part of
    ///   its transfer completes with the count instead, and one a worker is running
    ///   completes with its real result. A connect has begun, though: it is not issued
    ///   again but waited for (see `resubmitterLoop`).
    /// - `EFAULT`, reads and writes only: a buffered read or write that was to be issued
    ///   again from the thread's task work (waiting for a page the cache was filling) when
    ///   the thread was gone; bytes it had transferred are reported as a count, not EFAULT.
    /// - `EINTR`, kinds whose interrupted call did nothing (reads, writes, recvs, sends,
    ///   accepts, stat, fsync, splice, opens that create nothing): an io-wq worker's call
    ///   interrupted because its thread exited; for reads and writes also a first try in
    ///   a live submitting thread that waited there and was interrupted. Never a close,
    ///   unlink, rename, mkdir or a creating open, which may have happened before the
    ///   interruption (on NFS or FUSE).
    /// A real EFAULT (a bad buffer) of an exited thread's read runs a second time and gives
    /// EFAULT again. After `close`, or after `cancel`, the answer is reported as it is; a
    /// call is run again at most four times. The run again uses the credentials and the
    /// working directory of the resubmission thread, which are the process's (glibc applies
    /// setuid and friends to every thread; a thread that changed its own with a raw system
    /// call, or unshared its file-system state, should not exit with calls in flight).
    @inline(__always)
    private func isKernelCancellation(_ data: UInt64, kernelReturn value: Int, _ state: RingState) -> Bool {
        guard value == -Int(ECANCELED) || value == -Int(EFAULT) || value == -Int(EINTR) else { return false }
        let record = backgroundRecords + Handle(rawValue: data).slot
        guard !state.closed, !record.pointee.cancelRequested, record.pointee.resubmissions < 4 else { return false }
        // An interrupted read or write, of a live thread too (`isReadOrWrite`).
        if value == -Int(EINTR), Self.isReadOrWrite(record.pointee.entry.opcode) { return true }
        guard laio_shim_thread_mark_exited(record.pointee.submitter) else { return false }
        let opcode = UInt32(record.pointee.entry.opcode)
        func one(of opcodes: io_uring_op...) -> Bool { opcodes.contains { $0.rawValue == opcode } }
        switch Int32(-value) {
        case ECANCELED:
            return true
        case EFAULT:
            return one(of: IORING_OP_READ, IORING_OP_READV, IORING_OP_WRITE, IORING_OP_WRITEV)
        default:  // EINTR
            if one(of: IORING_OP_OPENAT) { return record.pointee.entry.open_flags & UInt32(O_CREAT) == 0 }
            if one(of: IORING_OP_OPENAT2) {
                let how = UnsafePointer<open_how>(bitPattern: UInt(record.pointee.entry.addr2))
                return how.map { $0.pointee.flags & UInt64(O_CREAT) == 0 } ?? false
            }
            return one(of: IORING_OP_READ, IORING_OP_READV, IORING_OP_WRITE, IORING_OP_WRITEV, IORING_OP_RECV,
                       IORING_OP_SEND, IORING_OP_RECVMSG, IORING_OP_SENDMSG, IORING_OP_ACCEPT, IORING_OP_STATX,
                       IORING_OP_FSYNC, IORING_OP_SPLICE)
        }
    }

    /// Queues the call for the resubmission thread, starting it on first need. Called with
    /// the lock held; the slot stays in flight (its handle outstanding) meanwhile.
    private func scheduleResubmission(_ data: UInt64, kernelReturn value: Int, _ state: inout RingState) {
        let slot = Int32(truncatingIfNeeded: Handle(rawValue: data).slot)
        backgroundRecords[Int(slot)].awaitingResubmission = true
        backgroundRecords[Int(slot)].kernelAnswer = Int32(value)
        // An interrupted call goes straight to a worker when issued again: its first try in
        // the issuing thread is what waited and was interrupted (`isReadOrWrite`).
        if value == -Int(EINTR) { backgroundRecords[Int(slot)].entry.flags |= UInt8(1) << UInt8(IOSQE_ASYNC_BIT) }
        state.resubmissions.append(slot)
        if state.resubmitter == nil { startResubmitter(&state) }
        if state.resubmitterWake >= 0 { Housekeeping.signal(eventfd: state.resubmitterWake) }
    }

    /// Starts the thread that issues cancelled calls again. It lives until shutdown, so the
    /// requests it submits are never cancelled by a thread's exit. If it cannot be started
    /// (no memory or threads), the waiting calls are reported with the kernel's answer.
    private func startResubmitter(_ state: inout RingState) {
        let wake = laio_shim_eventfd()
        var thread = pthread_t()
        // Unretained, and used without taking a reference in the thread: shutdown (which
        // deinit runs first) joins the thread before the backend goes.
        let me = Unmanaged.passUnretained(self).toOpaque()
        if wake >= 0, laio_shim_start_thread(&thread, { argument in
            Unmanaged<UringBackend>.fromOpaque(argument!)._withUnsafeGuaranteedRef { $0.resubmitterLoop() }
            return nil
        }, me, 256 * 1024) == 0 {
            state.resubmitter = thread
            state.resubmitterWake = wake
            return
        }
        if wake >= 0 { _ = Glibc.close(wake) }
        while let slot = state.resubmissions.popFirst() {
            let handle = Handle(slot: Int(slot), generation: slots[Int(slot)].generation)
            backgroundRecords[Int(slot)].awaitingResubmission = false
            let result = finishBackground(handle.rawValue, kernelReturn: Int(backgroundRecords[Int(slot)].kernelAnswer), &state)
            completions.push(Completion(handle: handle, kernelReturn: result), deferringResumption: true)
        }
    }

    /// The resubmission thread: issues each waiting call's entry again, under its handle,
    /// and sleeps in ppoll (interruptible, so the kernel can run the task work of the
    /// requests it owns) until there is more or shutdown ends it. A connect is not issued
    /// again (it has begun: a second connect answers EALREADY while the handshake is in
    /// progress): its socket is polled for POLLOUT instead, and its SO_ERROR is the result,
    /// as connect(2) itself finishes a connection in progress.
    private func resubmitterLoop() {
        _ = laio_shim_block_signals()
        let mark = laio_shim_thread_mark_retain()
        defer { laio_shim_thread_mark_release(mark) }
        var wait: Int64 = -1
        while true {
            let wake = state.withLock { $0.resubmitterWake }
            _ = Housekeeping.waitReadable(wake, nanoseconds: wait < 0 ? nil : wait)
            Housekeeping.reset(eventfd: wake)
            let next = state.withLock { state -> Int64? in
                guard !state.tornDown else { return nil }
                while !state.resubmissions.isEmpty {
                    // After close, shutdown reports the waiting calls.
                    guard !state.closed else { return -1 }
                    // A full submission ring: retried in a millisecond.
                    guard let entry = nextEntry() else { return 1_000_000 }
                    let slot = state.resubmissions.popFirst()!
                    let record = backgroundRecords + Int(slot)
                    if UInt32(record.pointee.entry.opcode) == IORING_OP_CONNECT.rawValue {
                        io_uring_prep_poll_add(entry, record.pointee.entry.fd, UInt32(POLLOUT))
                        entry.pointee.user_data = record.pointee.entry.user_data
                        slots[Int(slot)].fixup = .connectResult
                    } else {
                        entry.pointee = record.pointee.entry
                    }
                    record.pointee.awaitingResubmission = false
                    record.pointee.resubmissions += 1
                    if let old = record.pointee.submitter { laio_shim_thread_mark_release(old) }
                    record.pointee.submitter = laio_shim_thread_mark_retain()
                }
                submitPending()
                reap(&state)
                return -1
            }
            completions.resumeDeferred()
            guard let next else { return }
            wait = next
        }
    }

    package func service() -> Duration? {
        let interval = state.withLock { state -> Duration? in
            guard !state.tornDown else { return nil }
            submitPending()
            reap(&state)
            // Entries the kernel pushed back are retried on the next poll round.
            return io_uring_sq_ready(ring) > 0 ? .milliseconds(1) : nil
        }
        completions.resumeDeferred()
        return interval
    }

    /// The ring's descriptor: readable while completions wait in the ring. It stays open
    /// until deinit; after shutdown it never becomes readable again.
    package var harvestDescriptor: Int32? { ringFD }

    // MARK: - Cancellation and shutdown

    package func cancel(_ handle: Handle) throws(Errno) {
        let accepted = state.withLock { state -> Bool in
            guard !state.tornDown else { return false }
            reap(&state)
            let slot = handle.slot
            guard slot >= 0, slot < Int(state.fresh), slots[slot].inFlight,
                  Handle(slot: Int(slot), generation: slots[slot].generation) == handle
            else { return false }
            backgroundRecords[slot].cancelRequested = true
            if backgroundRecords[slot].awaitingResubmission {
                // Not in the kernel: nothing to ask it; the call is cancelled here.
                _ = state.resubmissions.removeFirst { $0 == Int32(slot) }
                backgroundRecords[slot].awaitingResubmission = false
                let result = finishBackground(handle.rawValue, kernelReturn: -Int(ECANCELED), &state)
                completions.push(Completion(handle: handle, kernelReturn: result), deferringResumption: true)
                return true
            }
            guard requestCancel(of: handle) else { return true }  // shutdown or a later cancel retries
            submitPending()
            reap(&state)
            return true
        }
        completions.resumeDeferred()
        if !accepted { throw .noSuchFileOrDirectory }
    }

    /// Stops the ring: later submits throw EBADF, calls waiting to be issued again are
    /// reported cancelled, every call in the kernel is asked to stop (again every 100 ms),
    /// and it returns only once each has completed and been reaped, so that deinit frees
    /// nothing the kernel may still write. It waits without the lock: a call that cannot be
    /// cancelled (a read a FUSE server does not answer) holds up the closer only, while
    /// poll, cancel, `notificationDescriptor` and `details` go on in other threads (they
    /// reap too, and shutdown sees what they reaped). A second closer waits as the first.
    package func shutdown() {
        var lastCancel: Int64 = 0
        while true {
            let step = state.withLock { state -> ShutdownStep in
                guard !state.tornDown else { return .done(resubmitter: nil) }
                if !state.closed {
                    state.closed = true
                    // Calls waiting to be issued again are not in the kernel: cancelled here.
                    while let slot = state.resubmissions.popFirst() {
                        let handle = Handle(slot: Int(slot), generation: slots[Int(slot)].generation)
                        backgroundRecords[Int(slot)].awaitingResubmission = false
                        let result = finishBackground(handle.rawValue, kernelReturn: -Int(ECANCELED), &state)
                        completions.push(Completion(handle: handle, kernelReturn: result), deferringResumption: true)
                    }
                }
                submitPending()
                reap(&state)
                if state.inFlight > 0 {
                    let now = monotonicNanoseconds()
                    if now - lastCancel > 100_000_000 {
                        // Ask again every 100 ms: a request may have been between states when
                        // the previous round looked for it.
                        cancelAll(state)
                        lastCancel = now
                    }
                    return .wait
                }
                // The ring itself (and its descriptor, which a concurrent poll may be sleeping
                // on) is released in deinit; nothing is in flight in it any more.
                state.tornDown = true
                guard let thread = state.resubmitter else { return .done(resubmitter: nil) }
                state.resubmitter = nil
                return .done(resubmitter: (thread, state.resubmitterWake))
            }
            completions.resumeDeferred()
            switch step {
            case .wait:
                // The ring's descriptor is readable while completions wait in it; the timeout
                // covers completions that reach the ring only when someone enters the kernel
                // (an overflow, task work), which the next round's reap fetches. The
                // descriptor stays open until deinit, which cannot run while this runs.
                _ = Housekeeping.waitReadable(ringFD, nanoseconds: 10_000_000)
            case let .done(resubmitter):
                // The resubmission thread sees `tornDown` and returns; it owns no request any more.
                if let resubmitter {
                    Housekeeping.signal(eventfd: resubmitter.wake)
                    pthread_join(resubmitter.thread, nil)
                    _ = Glibc.close(resubmitter.wake)
                }
                return
            }
        }
    }

    private enum ShutdownStep {
        /// Calls are still in flight: wait for completions, then look again.
        case wait
        /// Nothing is in flight; the resubmission thread, if this caller must join it.
        case done(resubmitter: (thread: pthread_t, wake: Int32)?)
    }

    private func cancelAll(_ state: RingState) {
        for slot in 0..<Int(state.fresh) where slots[slot].inFlight {
            if !requestCancel(of: Handle(slot: Int(slot), generation: slots[slot].generation)) { break }
        }
        submitPending()
    }

    // MARK: - Slots and handles

    @inline(__always)
    private func allocateSlot(_ state: inout RingState) -> Int32? {
        if state.freeCount > 0 {
            state.freeCount -= 1
            return freeSlots[state.freeCount]
        }
        guard Int(state.fresh) < capacity else { return nil }
        defer { state.fresh += 1 }
        return state.fresh
    }

    @inline(__always)
    private func releaseSlot(_ slot: Int32, _ state: inout RingState) {
        slots[Int(slot)].generation &+= 1
        slots[Int(slot)].fixup = .none
        freeSlots[state.freeCount] = slot
        state.freeCount += 1
    }

    private func statx(_ slot: Int32) -> UnsafeMutableRawPointer {
        statxArea + Int(slot) * Self.statxSize
    }

    /// The opcodes `prepare` uses for operations of `kind`: the one table that both
    /// "can it run here" (`runs`) and "prepare it" read. Empty for what io_uring has no
    /// opcode for (`.sendfile`, and raw `.syscall` numbers, which run as their typed form
    /// when they have one; see `Operation.canonical`).
    private static func opcodes(for kind: OperationKind) -> [io_uring_op] {
        switch kind {
        case .read, .pread: return [IORING_OP_READ]
        case .write, .pwrite: return [IORING_OP_WRITE]
        case .readv, .preadv: return [IORING_OP_READV]
        case .writev, .pwritev: return [IORING_OP_WRITEV]
        case .openat, .open: return [IORING_OP_OPENAT]
        case .close: return [IORING_OP_CLOSE]
        case .fstat, .stat, .newfstatat, .statx: return [IORING_OP_STATX]
        case .fsync, .fdatasync: return [IORING_OP_FSYNC]
        case .accept: return [IORING_OP_ACCEPT]
        case .connect: return [IORING_OP_CONNECT]
        case .recv: return [IORING_OP_RECV]
        case .recvfrom: return [IORING_OP_RECV, IORING_OP_RECVMSG]
        case .send: return [IORING_OP_SEND]
        case .sendto: return [IORING_OP_SEND, IORING_OP_SENDMSG]
        case .recvmsg: return [IORING_OP_RECVMSG]
        case .sendmsg: return [IORING_OP_SENDMSG]
        case .splice: return [IORING_OP_SPLICE]
        case .unlinkat: return [IORING_OP_UNLINKAT]
        case .renameat: return [IORING_OP_RENAMEAT]
        case .mkdirat: return [IORING_OP_MKDIRAT]
        case .openat2: return [IORING_OP_OPENAT2]
        case .nanosleep: return [IORING_OP_TIMEOUT]
        case .sendfile, .syscall: return []
        }
    }

    /// The kinds whose every opcode this kernel supports, one bit per kind (from the probe).
    private static func runnableKinds(supported: [Bool]) -> UInt64 {
        OperationKind.allCases.reduce(0) { kinds, kind in
            let opcodes = opcodes(for: kind)
            let runs = !opcodes.isEmpty && opcodes.allSatisfy { supported[Int($0.rawValue)] }
            return runs ? kinds | kind.bit : kinds
        }
    }

    /// Whether this kernel's io_uring runs every operation of `kind`.
    @inline(__always)
    package func runs(_ kind: OperationKind) -> Bool { runnable & kind.bit != 0 }

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

    // MARK: - The opcode table

    /// Fills `entry` for `operation`, using `slot`'s storage for what must outlive the call.
    /// Returns the error to report at once when the operation cannot run here: `ENOSYS`
    /// for what io_uring cannot do on this kernel, `EINVAL`/`EFAULT` for arguments the
    /// system call would refuse before doing anything.
    private func prepare(_ operation: Operation, slot: Int32, into entry: inout io_uring_sqe) -> Errno? {
        func length(_ count: Int) -> UInt32 { UInt32(min(count, Self.maxTransfer)) }
        if case .syscall = operation {} else if !runs(operation.kind) { return .noFunction }
        // The slot's storage stays put until the slot is reaped, so pointers into it may
        // be handed to the kernel.
        let record = slots + Int(slot)
        switch operation {
        case let .read(fd, buffer):
            io_uring_prep_read(&entry, fd, buffer.baseAddress, length(buffer.count), UInt64.max)  // -1: file position
        case let .pread(fd, buffer, offset):
            guard offset >= 0 else { return .invalidArgument }
            io_uring_prep_read(&entry, fd, buffer.baseAddress, length(buffer.count), UInt64(offset))
        case let .write(fd, buffer):
            io_uring_prep_write(&entry, fd, buffer.baseAddress, length(buffer.count), UInt64.max)
        case let .pwrite(fd, buffer, offset):
            guard offset >= 0 else { return .invalidArgument }
            io_uring_prep_write(&entry, fd, buffer.baseAddress, length(buffer.count), UInt64(offset))
        case let .readv(fd, iovecs):
            guard iovecs.count <= Int(UIO_MAXIOV) else { return .invalidArgument }
            io_uring_prep_readv(&entry, fd, iovecs.baseAddress, UInt32(iovecs.count), UInt64.max)
        case let .writev(fd, iovecs):
            guard iovecs.count <= Int(UIO_MAXIOV) else { return .invalidArgument }
            io_uring_prep_writev(&entry, fd, iovecs.baseAddress, UInt32(iovecs.count), UInt64.max)
        case let .preadv(fd, iovecs, offset):
            guard offset >= 0, iovecs.count <= Int(UIO_MAXIOV) else { return .invalidArgument }
            io_uring_prep_readv(&entry, fd, iovecs.baseAddress, UInt32(iovecs.count), UInt64(offset))
        case let .pwritev(fd, iovecs, offset):
            guard offset >= 0, iovecs.count <= Int(UIO_MAXIOV) else { return .invalidArgument }
            io_uring_prep_writev(&entry, fd, iovecs.baseAddress, UInt32(iovecs.count), UInt64(offset))
        case let .openat(dirfd, path, flags, mode):
            io_uring_prep_openat(&entry, dirfd, path, flags, mode)
            record.pointee.fixup = .newDescriptor
        case let .open(path, flags, mode):
            io_uring_prep_openat(&entry, AT_FDCWD, path, flags, mode)
            record.pointee.fixup = .newDescriptor
        case let .close(fd):
            io_uring_prep_close(&entry, fd)
        case let .fstat(fd, buffer):
            return prepareStat(dirfd: fd, path: Self.emptyPath, flags: Int32(LAIO_AT_EMPTY_PATH), into: buffer, record, &entry)
        case let .stat(path, buffer):
            return prepareStat(dirfd: AT_FDCWD, path: path, flags: 0, into: buffer, record, &entry)
        case let .newfstatat(dirfd, path, buffer, flags):
            return prepareStat(dirfd: dirfd, path: path, flags: flags, into: buffer, record, &entry)
        case let .statx(dirfd, path, flags, mask, buffer):
            io_uring_prep_statx(&entry, dirfd, path, flags, mask, OpaquePointer(buffer))
        case let .fsync(fd):
            io_uring_prep_fsync(&entry, fd, 0)
        case let .fdatasync(fd):
            io_uring_prep_fsync(&entry, fd, UInt32(IORING_FSYNC_DATASYNC))
        case let .accept(fd, address, length, flags):
            io_uring_prep_accept(&entry, fd, address, length, flags)
        case let .connect(fd, address, length):
            io_uring_prep_connect(&entry, fd, address, length)
        case let .recv(fd, buffer, flags):
            io_uring_prep_recv(&entry, fd, buffer.baseAddress, Int(length(buffer.count)), flags)
        case let .send(fd, buffer, flags):
            io_uring_prep_send(&entry, fd, buffer.baseAddress, Int(length(buffer.count)), flags)
        case let .recvfrom(fd, buffer, flags, address, addressLength):
            guard let address else {
                io_uring_prep_recv(&entry, fd, buffer.baseAddress, Int(length(buffer.count)), flags)
                return nil
            }
            guard let addressLength else { return .badAddress }
            // recvfrom as RECVMSG over one vector; the address length is written back on completion.
            Self.setOneVectorMessage(record, buffer.baseAddress, Int(length(buffer.count)),
                                     name: UnsafeMutableRawPointer(address), nameLength: addressLength.pointee)
            record.pointee.target = UnsafeMutableRawPointer(addressLength)
            record.pointee.fixup = .addressLength
            io_uring_prep_recvmsg(&entry, fd, record.pointer(to: \.message), UInt32(bitPattern: flags))
        case let .sendto(fd, buffer, flags, address, addressLength):
            guard let address else {
                io_uring_prep_send(&entry, fd, buffer.baseAddress, Int(length(buffer.count)), flags)
                return nil
            }
            Self.setOneVectorMessage(record, UnsafeMutableRawPointer(mutating: buffer.baseAddress), Int(length(buffer.count)),
                                     name: UnsafeMutableRawPointer(mutating: address), nameLength: addressLength)
            io_uring_prep_sendmsg(&entry, fd, record.pointer(to: \.message), UInt32(bitPattern: flags))
        case let .recvmsg(fd, message, flags):
            io_uring_prep_recvmsg(&entry, fd, message, UInt32(bitPattern: flags))
        case let .sendmsg(fd, message, flags):
            io_uring_prep_sendmsg(&entry, fd, message, UInt32(bitPattern: flags))
        case let .splice(inFD, inOffset, outFD, outOffset, count, flags):
            // splice(2) reads and advances the offsets; io_uring takes them by value.
            io_uring_prep_splice(&entry, inFD, inOffset?.pointee ?? -1, outFD, outOffset?.pointee ?? -1,
                                 length(count), flags)
            record.pointee.target = UnsafeMutableRawPointer(inOffset)
            record.pointee.target2 = UnsafeMutableRawPointer(outOffset)
            record.pointee.fixup = .spliceOffsets
        case let .unlinkat(dirfd, path, flags):
            io_uring_prep_unlinkat(&entry, dirfd, path, flags)
        case let .renameat(oldDirfd, oldPath, newDirfd, newPath):
            io_uring_prep_renameat(&entry, oldDirfd, oldPath, newDirfd, newPath, 0)
        case let .openat2(dirfd, path, how):
            // The kernel copies `how` while it prepares the request.
            io_uring_prep_openat2(&entry, dirfd, path, UnsafeMutablePointer(mutating: how))
            record.pointee.fixup = .newDescriptor
        case let .mkdirat(dirfd, path, mode):
            io_uring_prep_mkdirat(&entry, dirfd, path, mode)
        case let .nanosleep(duration):
            let time = timespec(duration)
            record.pointee.time = __kernel_timespec(tv_sec: Int64(time.tv_sec), tv_nsec: Int64(time.tv_nsec))
            io_uring_prep_timeout(&entry, record.pointer(to: \.time), 0, 0)
            record.pointee.fixup = .timeout
        case let .syscall(number, arguments) where number == Int(LAIO_SYS_nanosleep):
            guard runs(.nanosleep) else { return .noFunction }
            // The kernel copies the caller's timespec (same layout as __kernel_timespec on
            // 64-bit) while it prepares the request, and answers EFAULT for a bad pointer.
            io_uring_prep_timeout(&entry, UnsafeMutablePointer(bitPattern: arguments.a0), 0, 0)
            record.pointee.fixup = .timeout
        case let .syscall(number, arguments):
            // A raw number LAIO knows runs as its typed operation; the rest has no opcode.
            let typed = operation.canonical
            if case .syscall = typed { return prepareUntyped(number, arguments, into: &entry) }
            return prepare(typed, slot: slot, into: &entry)
        case .sendfile:
            // io_uring has no opcode for it.
            return .noFunction
        }
        return nil
    }

    /// A raw call with no typed form. A known call whose arguments could not be typed (a
    /// null buffer with a length, a length beyond `Int.max`): read and write run with the
    /// caller's values, so the kernel answers as read(2)/write(2) would (EFAULT once it
    /// touches the buffer); the others answer EFAULT at once. Unknown numbers: ENOSYS.
    private func prepareUntyped(_ number: Int, _ a: SyscallArguments, into entry: inout io_uring_sqe) -> Errno? {
        let reads = number == Int(LAIO_SYS_read) || number == Int(LAIO_SYS_pread64)
        let positional = number == Int(LAIO_SYS_pread64) || number == Int(LAIO_SYS_pwrite64)
        guard reads || positional || number == Int(LAIO_SYS_write) else {
            return Operation.hasTypedForm(number) ? .badAddress : .noFunction
        }
        guard runs(reads ? .read : .write) else { return .noFunction }
        guard !positional || a.a3 >= 0 else { return .invalidArgument }
        let fd = Int32(truncatingIfNeeded: a.a0)
        // A negative count is a size_t beyond Int.max: the kernel clamps it like any huge count.
        let count = UInt32(a.a2 < 0 ? Self.maxTransfer : min(a.a2, Self.maxTransfer))
        let offset = positional ? UInt64(a.a3) : UInt64.max  // -1: the file position
        if reads {
            io_uring_prep_read(&entry, fd, UnsafeMutableRawPointer(bitPattern: a.a1), count, offset)
        } else {
            io_uring_prep_write(&entry, fd, UnsafeRawPointer(bitPattern: a.a1), count, offset)
        }
        return nil
    }

    /// Fills the slot's message header for recvfrom/sendto with an address: one vector over
    /// the caller's buffer, the caller's address. The slot stays put until reaped, so the
    /// kernel may keep pointers to its header and vector.
    private static func setOneVectorMessage(_ record: UnsafeMutablePointer<UringSlot>, _ base: UnsafeMutableRawPointer?,
                                            _ count: Int, name: UnsafeMutableRawPointer, nameLength: socklen_t) {
        record.pointee.vector = iovec(iov_base: base, iov_len: count)
        record.pointee.message = msghdr()
        record.pointee.message.msg_name = name
        record.pointee.message.msg_namelen = nameLength
        record.pointee.message.msg_iov = record.pointer(to: \.vector)
        record.pointee.message.msg_iovlen = 1
    }

    /// stat, fstat and newfstatat as STATX into the slot's buffer, converted on completion.
    private func prepareStat(dirfd: Int32, path: UnsafePointer<CChar>, flags: Int32, into buffer: UnsafeMutablePointer<stat>,
                             _ record: UnsafeMutablePointer<UringSlot>, _ entry: inout io_uring_sqe) -> Errno? {
        // The stat family never triggers an automount and asks for the basic fields.
        io_uring_prep_statx(&entry, dirfd, path, flags | Int32(LAIO_AT_NO_AUTOMOUNT), UInt32(LAIO_STATX_BASIC_STATS),
                            OpaquePointer(statx(Int32(record - slots))))
        record.pointee.target = UnsafeMutableRawPointer(buffer)
        record.pointee.fixup = .stat
        return nil
    }

    /// The "" path of fstat run as statx: static storage in the C shim.
    private static var emptyPath: UnsafePointer<CChar> { laio_shim_empty_path() }
}

/// What a background call needs to be run again should its thread exit: kept apart from
/// `UringSlot`, which every call touches, and written only when a call goes to the
/// background (all zero bits is the initial value; allocated zeroed, one per slot).
struct UringBackgroundRecord {
    /// The submission entry as the kernel took it, to issue it again.
    var entry = io_uring_sqe()
    /// The thread that submitted the request (a reference on its mark).
    var submitter: OpaquePointer? = nil
    /// The kernel's answer that queued the call for the resubmission thread.
    var kernelAnswer: Int32 = 0
    /// How many times the call was issued again after the kernel cancelled it.
    var resubmissions: UInt8 = 0
    /// Set by `cancel`: an ECANCELED is then the answer asked for, not the kernel's own.
    var cancelRequested = false
    /// Queued for the resubmission thread (not in the kernel meanwhile).
    var awaitingResubmission = false
}

/// What one in-flight operation needs beyond its submission entry. All zero bits is the
/// initial value of every field (the backend allocates slots zeroed).
struct UringSlot {
    enum Fixup: UInt8 {
        case none, stat, timeout, addressLength, spliceOffsets, connectResult, newDescriptor
    }

    var generation: UInt32 = 0
    var inFlight = false
    var fixup = Fixup.none
    /// The caller's memory a fix-up writes: the `stat` buffer, the address length, the
    /// splice input offset.
    var target: UnsafeMutableRawPointer? = nil
    /// The splice output offset.
    var target2: UnsafeMutableRawPointer? = nil
    /// recvfrom/sendto with an address run as RECVMSG/SENDMSG over this header and vector.
    var message = msghdr()
    var vector = iovec()
    /// nanosleep's duration, read by the kernel when the TIMEOUT is prepared.
    var time = __kernel_timespec()
}
