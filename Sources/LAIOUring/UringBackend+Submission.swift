#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLiburing
import CLinuxShims
import LAIOCore
import SystemPackage

// Submission: an operation becomes a submission entry, goes to the kernel, and its own
// completion is looked for at once (an inline completion returns `.completed`).
extension UringBackend {
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
            guard completions.hasCredit, let slot = state.slots.allocate() else {
                return .failure(.resourceTemporarilyUnavailable)
            }
            guard let entry = nextEntry() else {
                state.slots.release(slot)
                return .failure(.resourceTemporarilyUnavailable)
            }
            let handle = state.slots.handle(of: slot)
            if let error = UringTranslation.prepare(operation, userData: handle.rawValue, toWorker: toWorker,
                                                    opcodes: opcodes, slot: state.slots.records + Int(slot),
                                                    statx: state.slots.statx(slot), into: &entry.pointee) {
                // Give the entry back: liburing publishes its local tail to the kernel only
                // when it submits, and nothing was submitted since nextEntry() took it.
                ring.pointee.sq.sqe_tail &-= 1
                state.slots.release(slot)
                return .success(.completed(.failure(error)))
            }
            state.slots.records[Int(slot)].inFlight = true
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
            // kernel took it (nothing has written the ring's copy since it was prepared, under this
            // lock) and the thread's mark. Only calls that go to the background pay for this.
            state.slots.backgroundRecords[Int(slot)] = UringBackgroundRecord(entry: entry.pointee,
                                                                             submitter: laio_shim_thread_mark_retain())
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
    func sendsToWorker(_ operation: Operation) -> Bool {
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
    func takeOwnCompletion(_ own: UInt64, entry ownEntry: UnsafePointer<io_uring_sqe>,
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
    func nextEntry() -> UnsafeMutablePointer<io_uring_sqe>? {
        if let sqe = io_uring_get_sqe(ring) { return sqe }
        submitPending()
        return io_uring_get_sqe(ring)
    }

    /// Hands waiting submission entries to the kernel. On EBUSY/EAGAIN (the kernel is short
    /// of completion space or memory) they stay in the ring, already counted as in flight,
    /// and the next submit or poll hands them over.
    func submitPending() {
        while io_uring_sq_ready(ring) > 0 {
            let result = io_uring_submit(ring)
            if result == -EINTR { continue }
            return
        }
    }
}
