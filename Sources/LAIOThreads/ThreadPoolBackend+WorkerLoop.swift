#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import LAIOCore
import Synchronization
import SystemPackage

// What a worker thread does: take a call, run it, report it, look for the next.
extension ThreadPoolBackend {
    func workerLoop(_ me: Int32, _ worker: Worker) {
        _ = laio_shim_worker_sigmask()
        worker.thread = pthread_self()  // published to cancellers by the lock below
        var starting = true
        var ran = false
        var spawn: [(Int32, Worker)] = []
        // A background call this worker finished: its slot is freed under the next lock,
        // and only then is its completion reported, so that a slot is free again before
        // poll can hand the completion out and return its credit.
        var finished: (index: Int32, completion: Completion)? = nil
        while true {
            let next = state.withLock { state -> Int32? in
                if starting {
                    state.startingWorkers -= 1
                    state.peakWorkers = max(state.peakWorkers, state.liveWorkers - state.startingWorkers)
                    starting = false
                    // Calls still waiting beyond this one and the workers on their way: up
                    // to two more start from here, so the pool grows as a tree, off the
                    // submitting thread.
                    while spawn.count < 2, !state.closing,
                          state.queue.count > 1 + state.startingWorkers + returning.load(ordering: .relaxed),
                          state.liveWorkers < settings.maximumWorkers {
                        spawn.append(reserveWorker(&state))
                    }
                }
                if ran {
                    returning.wrappingSubtract(1, ordering: .relaxed)
                    ran = false
                    // A start was refused while calls wait: try again from here, so that
                    // the retry does not depend on someone calling poll.
                    if startRefused.load(ordering: .relaxed), !state.closing,
                       state.queue.count > 1 + state.startingWorkers + returning.load(ordering: .relaxed),
                       state.liveWorkers < settings.maximumWorkers {
                        startRefused.store(false, ordering: .relaxed)
                        spawn.append(reserveWorker(&state))
                    }
                }
                if let finished { free(finished.index, in: &state) }
                if let index = state.queue.popFirst() {
                    slots[Int(index)].status = .running(me)
                    return index
                }
                if state.closing { return nil }
                state.idle.append(me)
                return -1
            }
            if let done = finished {
                completions.push(done.completion)
                finished = nil
            }
            if !spawn.isEmpty {
                for (index, record) in spawn where start(index, record) != nil {
                    startRefused.store(true, ordering: .relaxed)
                }
                spawn.removeAll()
            }
            guard var index = next else {
                // Counted out only after its last completion is pushed: shutdown returns
                // once no worker is counted, and every call must be reported by then.
                state.withLock { retire(me, &$0) }
                return
            }
            if index < 0 {
                guard let delivered = waitForWork(me, worker) else { return }
                index = delivered
                if index < 0 { continue }
            }
            ran = true
            if let completion = run(index) { finished = (index, completion) }
        }
    }

    /// Runs the call in slot `index`. Returns its completion if this worker must report it
    /// (the caller detached), after freeing the slot; nil if the caller took the result.
    func run(_ index: Int32) -> Completion? {
        let slot = slots[Int(index)]
        var result: Int
        if slot.cancelRequested.load(ordering: .acquiring) {
            result = -Int(ECANCELED)
        } else {
            var operation = slot.operation
            var started: Int64 = 0  // read only for a sleep, to keep the clock off other calls
            if case .nanosleep = operation { started = monotonicNanoseconds() }
            while true {
                result = operation.run()
                // EINTR can only come from the cancel signal (workers block all others);
                // a stale one, meant for an earlier call, restarts this one (a sleep with
                // the time it has left: an interrupted call transferred nothing).
                guard result == -Int(EINTR), !slot.cancelRequested.load(ordering: .acquiring) else { break }
                if case let .nanosleep(duration) = slot.operation {
                    operation = .nanosleep(duration - .nanoseconds(monotonicNanoseconds() - started))
                }
            }
            if result == -Int(EINTR) { result = -Int(ECANCELED) }
        }
        slot.result = result
        // Counted before the caller can see the result and submit again (see `returning`).
        returning.wrappingAdd(1, ordering: .relaxed)
        if slot.phase.exchange(Phase.done, ordering: .acquiringAndReleasing) == Phase.detached {
            return Completion(handle: handle(of: index), kernelReturn: result)
        }
        return nil
    }
}
