#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import LAIOCore
import Synchronization
import SystemPackage

// The pool's growth (a worker started for a call that would wait, retried when a start
// was refused) and shrink (an idle worker beyond the minimum retires after its keep-alive).
extension ThreadPoolBackend {

    /// Takes a worker record for a thread about to start and counts it. Called with the
    /// pool's lock held.
    func reserveWorker(_ state: inout PoolState) -> (Int32, Worker) {
        state.liveWorkers += 1
        state.startingWorkers += 1
        if let index = state.freeWorkers.popLast() { return (index, state.workers[Int(index)]) }
        state.workers.append(Worker())
        return (Int32(state.workers.count - 1), state.workers[state.workers.count - 1])
    }

    /// Starts the thread of a reserved worker, detached. On failure the reservation is
    /// undone and the errno returned.
    func start(_ index: Int32, _ worker: Worker) -> Errno? {
        // Retained here and taken back exactly once: by the new thread, or below if it never starts.
        let context = Unmanaged.passRetained(WorkerStart(pool: self, index: index, worker: worker)).toOpaque()
        var thread = pthread_t()
        // Every signal blocked until the worker sets its own mask: no handler of the
        // application runs on a worker.
        let rc = laio_shim_start_thread(&thread, { argument in
            let start = Unmanaged<WorkerStart>.fromOpaque(argument!).takeRetainedValue()
            start.pool.workerLoop(start.index, start.worker)
            return nil
        }, context, ThreadPoolSettings.workerStackSize)
        guard rc == 0 else {
            Unmanaged<WorkerStart>.fromOpaque(context).release()
            state.withLock { state in
                state.liveWorkers -= 1
                state.startingWorkers -= 1
                state.freeWorkers.append(index)
            }
            return Errno(rawValue: rc)
        }
        pthread_detach(thread)
        return nil
    }

    /// Tries again to start a worker for waiting calls after a start was refused. Returns
    /// true when no more tries are needed (a worker started, or no call waits for one).
    func retryStart() -> Bool {
        // Cleared first: a start refused meanwhile sets it again after this.
        startRefused.store(false, ordering: .relaxed)
        let reserved = state.withLock { state -> (Int32, Worker)? in
            guard !state.closing, state.queue.count > state.startingWorkers + returning.load(ordering: .relaxed),
                  state.liveWorkers < settings.maximumWorkers else { return nil }
            return reserveWorker(&state)
        }
        guard let (index, worker) = reserved else { return true }
        if start(index, worker) != nil {
            startRefused.store(true, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Waits as an idle worker for a delivery: a slot index or `Mailbox.recheck`. Returns
    /// nil when the worker retired instead: the keep-alive ran out with more workers than
    /// the minimum and nothing on its way to this one.
    func waitForWork(_ me: Int32, _ worker: Worker) -> Int32? {
        if let value = worker.collect(spinningFor: idleSpinNanoseconds, parkingFor: keepAliveNanoseconds) {
            return value
        }
        let retired = state.withLock { state -> Bool in
            // Not in the idle list: a submitter or shutdown took this worker and delivers.
            // Workers still starting do not count: their start may yet be refused.
            guard state.liveWorkers - state.startingWorkers > settings.minimumWorkers,
                  let position = state.idle.firstIndex(of: me) else { return false }
            state.idle.remove(at: position)
            retire(me, &state)
            return true
        }
        return retired ? nil : worker.collect(spinningFor: 0, parkingFor: nil)
    }

    /// Counts worker `me` out; its record is free for the next worker. Called with the
    /// pool's lock held, as the worker's last touch of the pool's state.
    func retire(_ me: Int32, _ state: inout PoolState) {
        state.liveWorkers -= 1
        state.freeWorkers.append(me)
    }

}
