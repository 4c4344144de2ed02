#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLiburing
import CLinuxShims
import LAIOCore
import SystemPackage

// Cancellation of one call, and shutdown: every call in the kernel cancelled and reaped
// before the ring and the slots may go.
extension UringBackend {
    package func cancel(_ handle: Handle) throws(Errno) {
        let accepted = state.withLock { state -> Bool in
            guard !state.tornDown else { return false }
            reap(&state)
            let slot = handle.slot
            guard slot >= 0, slot < Int(state.slots.fresh), state.slots.records[slot].inFlight,
                  state.slots.handle(of: Int32(slot)) == handle
            else { return false }
            state.slots.backgroundRecords[slot].cancelRequested = true
            if state.slots.backgroundRecords[slot].awaitingResubmission {
                // Not in the kernel: nothing to ask it; the call is cancelled here.
                _ = state.resubmissions.removeFirst { $0 == Int32(slot) }
                state.slots.backgroundRecords[slot].awaitingResubmission = false
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
                        let handle = state.slots.handle(of: slot)
                        state.slots.backgroundRecords[Int(slot)].awaitingResubmission = false
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

    enum ShutdownStep {
        /// Calls are still in flight: wait for completions, then look again.
        case wait
        /// Nothing is in flight; the resubmission thread, if this caller must join it.
        case done(resubmitter: (thread: pthread_t, wake: Int32)?)
    }

    func cancelAll(_ state: RingState) {
        for slot in 0..<Int(state.slots.fresh) where state.slots.records[slot].inFlight {
            if !requestCancel(of: state.slots.handle(of: Int32(slot))) { break }
        }
        submitPending()
    }

    /// Queues an IORING_OP_ASYNC_CANCEL for `handle`, as a request of the backend's own
    /// (user_data 0). False when the submission ring has no room for it.
    func requestCancel(of handle: Handle) -> Bool {
        guard let entry = nextEntry() else { return false }
        UringTranslation.cancel(handle.rawValue, into: &entry.pointee)
        return true
    }
}
