#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import LAIOCore
import Synchronization
import SystemPackage

// Cancel, the cancel signal re-sent until the call returns, and shutdown.
extension ThreadPoolBackend {
    package func cancel(_ handle: Handle) throws(Errno) {
        let index = handle.slot
        guard slots.indices.contains(index) else { throw .noSuchFileOrDirectory }
        let slot = slots[index]
        let action = state.withLock { state -> CancelAction in
            guard self.handle(of: Int32(index)) == handle,
                  slot.phase.load(ordering: .acquiring) == Phase.detached
            else { return .notFound }
            switch slot.status {
            case .queued:
                // Out of the queue and free now, before its report: the credit comes back
                // when poll hands the report out, and a slot must be free by then.
                state.queue.removeFirst { $0 == Int32(index) }
                free(Int32(index), in: &state)
                return .report
            case let .running(worker):
                if !slot.cancelRequested.load(ordering: .relaxed) {
                    slot.cancelRequested.store(true, ordering: .releasing)
                    state.cancelling.append(Int32(index))
                    pendingCancels.wrappingAdd(1, ordering: .relaxed)
                }
                // Under the lock: a worker running a call leaves its loop only after taking
                // it, so the thread is alive here.
                _ = pthread_kill(state.workers[Int(worker)].thread, cancelSignal)
                return .interrupted
            case .free:
                return .notFound
            }
        }
        switch action {
        case .notFound:
            throw .noSuchFileOrDirectory
        case .report:
            completions.push(Completion(handle: handle, result: .failure(.canceled)))
        case .interrupted:
            break
        }
    }

    private enum CancelAction { case notFound, report, interrupted }

    package func service() -> Duration? {
        var next: Duration? = nil
        if pendingCancels.load(ordering: .relaxed) > 0 {
            reassertCancels()
            next = .milliseconds(1)
        }
        if startRefused.load(ordering: .relaxed) && !retryStart() {
            next = min(next ?? .milliseconds(10), .milliseconds(10))
        }
        return next
    }

    /// Re-sends the cancel signal to every worker still running a cancelled call.
    private func reassertCancels() {
        state.withLock { state in
            for index in state.cancelling {
                if case let .running(worker) = slots[Int(index)].status {
                    _ = pthread_kill(state.workers[Int(worker)].thread, cancelSignal)
                }
            }
        }
    }

    // MARK: Shutting down

    package func shutdown() {
        let cancelled = state.withLock { state -> [Handle] in
            guard !state.closing else { return [] }
            state.closing = true
            // Queued background calls leave the queue, freed; calls in a caller's lazy window
            // stay for a worker to run.
            var cancelled: [Handle] = []
            var kept = FIFO<Int32>(initialCapacity: max(state.queue.count, 1))
            while let index = state.queue.popFirst() {
                if slots[Int(index)].phase.load(ordering: .acquiring) == Phase.detached {
                    cancelled.append(handle(of: index))
                    free(index, in: &state)
                } else {
                    kept.append(index)
                }
            }
            state.queue = kept
            for worker in state.idle { state.workers[Int(worker)].deliver(Mailbox.recheck) }
            state.idle.removeAll()
            return cancelled
        }
        for handle in cancelled {
            completions.push(Completion(handle: handle, result: .failure(.canceled)))
        }
        // Interrupt running background calls until every worker has exited; calls in a
        // caller's lazy window are left to finish or detach (then they are interrupted too).
        while true {
            let live = state.withLock { state -> Int in
                for (index, slot) in slots.enumerated() {
                    guard case let .running(worker) = slot.status,
                          slot.phase.load(ordering: .acquiring) == Phase.detached else { continue }
                    if !slot.cancelRequested.load(ordering: .relaxed) {
                        slot.cancelRequested.store(true, ordering: .releasing)
                        state.cancelling.append(Int32(index))
                        pendingCancels.wrappingAdd(1, ordering: .relaxed)
                    }
                    _ = pthread_kill(state.workers[Int(worker)].thread, cancelSignal)
                }
                return state.liveWorkers
            }
            if live == 0 { break }
            var pause = timespec(tv_sec: 0, tv_nsec: 500_000)
            _ = nanosleep(&pause, nil)
        }
        // Workers are detached: one that has left its loop touches nothing but its own
        // stack and its reference to the pool, which keeps the pool (and the records) alive.
    }
}
