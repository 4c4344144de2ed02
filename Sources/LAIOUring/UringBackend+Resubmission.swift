#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLiburing
import CLinuxShims
import LAIOCore
import SystemPackage

// Calls whose thread exited, or whose read or write was interrupted: recognised, queued and
// issued again by the resubmission thread, which lives as long as the backend.
extension UringBackend {
    /// `finish` for a call that went to the background: its thread's mark is let go too.
    func finishBackground(_ data: UInt64, kernelReturn value: Int, _ state: inout RingState) -> Int {
        let record = state.slots.backgroundRecords + Handle(rawValue: data).slot
        laio_shim_thread_mark_release(record.pointee.submitter)
        record.pointee.submitter = nil
        return finish(data, kernelReturn: value, &state)
    }

    /// What `takeOwnCompletion` and `reap` give for the caller's own read or write that
    /// the kernel answered with EINTR: not a result (no kernel answer is this negative).
    static let interruptedInline = Int.min

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
    static func isReadOrWrite(_ opcode: UInt8) -> Bool {
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
    func isKernelCancellation(_ data: UInt64, kernelReturn value: Int, _ state: RingState) -> Bool {
        guard value == -Int(ECANCELED) || value == -Int(EFAULT) || value == -Int(EINTR) else { return false }
        let record = state.slots.backgroundRecords + Handle(rawValue: data).slot
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
    func scheduleResubmission(_ data: UInt64, kernelReturn value: Int, _ state: inout RingState) {
        let slot = Int32(truncatingIfNeeded: Handle(rawValue: data).slot)
        state.slots.backgroundRecords[Int(slot)].awaitingResubmission = true
        state.slots.backgroundRecords[Int(slot)].kernelAnswer = Int32(value)
        // An interrupted call goes straight to a worker when issued again: its first try in
        // the issuing thread is what waited and was interrupted (`isReadOrWrite`).
        if value == -Int(EINTR) { state.slots.backgroundRecords[Int(slot)].entry.flags |= UringTranslation.toWorkerFlag }
        state.resubmissions.append(slot)
        if state.resubmitter == nil { startResubmitter(&state) }
        if state.resubmitterWake >= 0 { Housekeeping.signal(eventfd: state.resubmitterWake) }
    }

    /// Starts the thread that issues cancelled calls again. It lives until shutdown, so the
    /// requests it submits are never cancelled by a thread's exit. If it cannot be started
    /// (no memory or threads), the waiting calls are reported with the kernel's answer.
    func startResubmitter(_ state: inout RingState) {
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
            let handle = state.slots.handle(of: slot)
            state.slots.backgroundRecords[Int(slot)].awaitingResubmission = false
            let answer = Int(state.slots.backgroundRecords[Int(slot)].kernelAnswer)
            let result = finishBackground(handle.rawValue, kernelReturn: answer, &state)
            completions.push(Completion(handle: handle, kernelReturn: result), deferringResumption: true)
        }
    }

    /// The resubmission thread: issues each waiting call's entry again, under its handle,
    /// and sleeps in ppoll (interruptible, so the kernel can run the task work of the
    /// requests it owns) until there is more or shutdown ends it. A connect is not issued
    /// again (it has begun: a second connect answers EALREADY while the handshake is in
    /// progress): its socket is polled for POLLOUT instead, and its SO_ERROR is the result,
    /// as connect(2) itself finishes a connection in progress.
    func resubmitterLoop() {
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
                    let record = state.slots.backgroundRecords + Int(slot)
                    if let fixup = UringTranslation.reissue(record.pointee.entry, into: &entry.pointee) {
                        state.slots.records[Int(slot)].fixup = fixup
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
}
