#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLiburing
import CLinuxShims
import LAIOCore
import SystemPackage

// Completions: waiting on the ring, reaping it into the completion queue, and the fix-ups
// that turn a kernel answer into the system call's own.
extension UringBackend {
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

    /// Moves every completion in the ring to the completion queue, except the one with
    /// `user_data == own`, whose result it returns (or `interruptedInline`, as
    /// `takeOwnCompletion`; `ownEntry` is its submission entry). Called with the lock held.
    @discardableResult
    func reap(_ state: inout RingState, looking own: UInt64 = 0,
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
    func finish(_ data: UInt64, kernelReturn value: Int, _ state: inout RingState) -> Int {
        let slot = Int32(truncatingIfNeeded: Handle(rawValue: data).slot)
        let record = state.slots.records + Int(slot)
        var result = value
        switch record.pointee.fixup {
        case .none:
            break
        case .stat:
            if value >= 0 {
                laio_shim_statx_to_stat(state.slots.statx(slot), record.pointee.target!.assumingMemoryBound(to: stat.self))
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
            if value >= 0 { result = -Int(laio_shim_socket_error(state.slots.backgroundRecords[Int(slot)].entry.fd)) }
        case .newDescriptor:
            // A number handed out again names a new file: its storage is looked up afresh.
            if value >= 0 { slowStorage.forget(Int32(truncatingIfNeeded: value)) }
        }
        record.pointee.inFlight = false
        state.inFlight -= 1
        state.slots.release(slot)
        return result
    }
}
