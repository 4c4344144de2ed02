#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LAIOCore
import SystemPackage

// The submit path: hand the call to a worker, wait the lazy window, answer now or later.
extension ThreadPoolBackend {
    package func submit(_ operation: Operation, claimed: Bool) throws(Errno) -> Outcome {
        try submit(operation, lazy: true, claimed: claimed)
    }

    /// Issues `operation`; with `lazy: false` the caller does not wait the lazy window (it
    /// already knows the call will block, for example from an EAGAIN of its non-blocking
    /// form) and gets `.inProgress` unless the worker has finished by the time it looks.
    /// With `claimed`, the call is claimed for its task (see `Backend.submit(_:claimed:)`).
    package func submit(_ operation: Operation, lazy: Bool, claimed: Bool = false) throws(Errno) -> Outcome {
        if operation.isUnsafeOffThread { return .completed(.failure(.noFunction)) }
        try completions.reserve()
        let dispatch = state.withLock { state -> Dispatch in
            if state.closing { return .closed }
            // Credits bound outstanding operations by `capacity`, so a slot is always free.
            let index = freeSlots.pop()
            let slot = slots[Int(index)]
            slot.generation &+= 1
            slot.operation = operation
            slot.cancelRequested.store(false, ordering: .relaxed)
            slot.phase.store(Phase.waiting, ordering: .relaxed)
            if let worker = state.idle.popLast() {
                slot.status = .running(worker)
                return .handed(index, state.workers[Int(worker)])
            }
            slot.status = .queued
            state.queue.append(index)
            // No worker is free: one more starts for this call at once, unless one is starting
            // already (each new worker starts more while calls wait for one, so a burst of
            // calls does not make this thread start a thread for each), or the pool is at its
            // bound (then calls wait in order).
            if state.startingWorkers == 0 && state.queue.count > returning.load(ordering: .relaxed)
                && state.liveWorkers < settings.maximumWorkers {
                let (workerIndex, worker) = reserveWorker(&state)
                return .starting(index, workerIndex, worker)
            }
            return .queued(index)
        }
        let index: Int32
        switch dispatch {
        case .closed:
            completions.release()
            throw .badFileDescriptor
        case let .handed(slotIndex, worker):
            worker.deliver(slotIndex)
            index = slotIndex
        case let .starting(slotIndex, workerIndex, worker):
            // A refused start (EAGAIN at RLIMIT_NPROC) leaves the call queued for a worker
            // that frees up, and `service()` tries again.
            if start(workerIndex, worker) != nil { startRefused.store(true, ordering: .relaxed) }
            index = slotIndex
        case let .queued(slotIndex):
            index = slotIndex
        }
        let slot = slots[Int(index)]
        // The handle now, while the slot is surely this call's: once the phase reads
        // `detached`, the worker may report the call and the slot be reused (a new generation)
        // before this thread would read it.
        let handle = handle(of: index)
        if lazy && windowNanoseconds > 0 {
            let deadline = monotonicNanoseconds() &+ windowNanoseconds
            var spins = 0
            while slot.phase.load(ordering: .acquiring) == Phase.waiting {
                spins &+= 1
                if spins & 31 == 0 && monotonicNanoseconds() >= deadline { break }
            }
        }
        // Claimed before the worker can report it: that is after the mark below at the earliest.
        if claimed { completions.claim(handle) }
        // Exactly one of caller and worker sees the other's mark: whoever comes second
        // owns the result (the caller returns it, or the worker pushes a completion).
        if !slot.phase.compareExchange(expected: Phase.waiting, desired: Phase.detached,
                                       ordering: .acquiringAndReleasing).exchanged {
            if claimed { completions.unclaim(handle) }
            // The worker is done. The synchronous path takes no lock: no handle was given
            // out and the phase never read `detached`, so cancel and shutdown leave the
            // slot alone until it is reused.
            let result = slot.result
            freeSlots.push(index)
            completions.release()
            return .completed(Result(kernelReturn: result))
        }
        return .inProgress(handle)
    }

    private enum Dispatch { case closed, handed(Int32, Worker), starting(Int32, Int32, Worker), queued(Int32) }
}
