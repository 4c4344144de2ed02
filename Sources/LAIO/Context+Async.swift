#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import LAIOCore
import Synchronization
import SystemPackage

extension Context {
    /// Runs `operation` and returns its result, suspending the task only if the call
    /// blocks: the async form of `submit`.
    ///
    /// - A call that finishes without blocking (when `submit` would answer `.completed`)
    ///   returns without suspending: the task never leaves its thread or executor.
    /// - A call that goes to the background suspends the task, and its completion resumes
    ///   it exactly once, from whichever thread reports it (a pool worker, the context's
    ///   harvester thread for calls in the ring, or a thread in `poll`). Its completion
    ///   never appears in `poll`, and no completion of a `submit` resumes a task.
    /// - Cancelling the task cancels the call through LAIO: `perform` then throws
    ///   `ECANCELED`, or returns the real result if the call finished first. Either way it
    ///   returns only once the call has been reported, so memory the operation points to
    ///   is never touched after `perform` returns, and may live on the task's stack. A task
    ///   cancelled before it calls `perform` does not start the call (`ECANCELED`).
    /// - At capacity it waits for room, in order of arrival and cancellably, instead of
    ///   throwing `EAGAIN`.
    /// - `close` ends every `perform`: awaited calls return their result or throw
    ///   `ECANCELED`, tasks waiting for room throw `EBADF`; later calls throw `EBADF`.
    ///
    /// Errors are the call's errno, as the system call gives it.
    nonisolated(nonsending)
    public func perform(_ operation: Operation) async throws(Errno) -> Int {
        try await run(operation, cancellable: true)
    }

    /// `perform`; with `cancellable: false` the task's cancellation neither stops the call
    /// nor keeps it from starting (a close must close).
    nonisolated(nonsending)
    func run(_ operation: Operation, cancellable: Bool) async throws(Errno) -> Int {
        guard madeHere else { throw .badFileDescriptor }
        if cancellable && Task.isCancelled { throw .canceled }
        // Whether this task has waited for room: it then keeps its place at the front.
        var waited = false
        if completions.hasRoomWaiters {
            try await waitForRoom(first: false, cancellable: cancellable)
            waited = true
        }
        while true {
            let outcome: Outcome
            do throws(Errno) {
                outcome = try backend.submit(operation, claimed: true)
            } catch where error == .resourceTemporarilyUnavailable {
                if completions.hasCredit {
                    // Full for another reason than credits (a submission ring the kernel
                    // has not taken yet, a ring with fewer slots than the queue has credits
                    // on kernels without IORING_FEAT_NODROP): look again after letting
                    // others run, unless the task was cancelled meanwhile (the call has not
                    // started, so ECANCELED is its answer, as for a task cancelled before).
                    await Task.yield()
                    if cancellable && Task.isCancelled {
                        if waited { completions.passRoomOn() }
                        throw .canceled
                    }
                } else {
                    try await waitForRoom(first: waited, cancellable: cancellable)
                    waited = true
                }
                continue
            }
            // A waiter that got its turn passes any room left on to the next.
            if waited { completions.passRoomOn() }
            switch outcome {
            case let .completed(result):
                return try result.get()
            case let .inProgress(handle):
                suspensions.add(1, ordering: .relaxed)
                return try await result(of: handle, cancellable: cancellable).get()
            }
        }
    }

    /// Suspends until a credit is free; throws `ECANCELED` if the task is cancelled
    /// meanwhile (when `cancellable`), `EBADF` if the context is closed.
    nonisolated(nonsending)
    private func waitForRoom(first: Bool, cancellable: Bool) async throws(Errno) {
        switch await completions.waitForRoom(first: first, cancellable: cancellable) {
        case .room:
            if cancellable && Task.isCancelled {
                completions.passRoomOn()
                throw .canceled
            }
        case .cancelled:
            throw .canceled
        case .closed:
            throw .badFileDescriptor
        }
    }

    /// The result of claimed call `handle`, suspending until it is reported.
    nonisolated(nonsending)
    private func result(of handle: Handle, cancellable: Bool) async -> Result<Int, Errno> {
        if let result = completions.takeResult(of: handle) { return result }
        // The context's reaper for calls in the ring: its executor's thread while it has one
        // (it sleeps on the ring), else the harvester, woken or started here.
        if !handle.isRouteTagged, let harvester, harvester.reapsRing,
           !executorReaps.load(ordering: .sequentiallyConsistent), !harvester.callWentToRing() {
            return harvester.reapUntilReported(handle, in: completions)
        }
        let completions = self.completions
        guard cancellable else {
            return await withUnsafeContinuation { completions.wait(for: handle, with: $0) }
        }
        let backend = self.backend
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: CompletionQueue.Continuation) in
                completions.wait(for: handle, with: continuation)
            }
        } onCancel: {
            // ENOENT: it has finished; its report is on the way to this task.
            try? backend.cancel(handle)
            // A cancel may need asking again (a pool worker's signal that came before its
            // system call); poll does that, and for awaited calls the reaper does.
            self.cancelRequested()
        }
    }

    /// An awaited call was cancelled: the context's reaper (its executor's thread, else the
    /// harvester) services the backend until the cancel needs no more asking.
    private func cancelRequested() {
        if executorReaps.load(ordering: .sequentiallyConsistent),
           let executor = executorSlot.withLock({ $0.executor }), executor.reaps {
            executor.cancelRequested()
            return
        }
        harvester?.cancelRequested()
        // An executor made meanwhile parked the harvester, which may have dropped this
        // cancel: ask the executor too. (One made after this look services the backend
        // as its thread starts, after the cancel was made.)
        if let executor = executorSlot.withLock({ $0.executor }), executor.reaps {
            executor.cancelRequested()
        }
    }
}

/// The thread that services a context for tasks awaiting its calls when nobody polls: it
/// reaps the ring, so that the completions of awaited calls in it reach their tasks, and
/// asks again for cancels that need it (`Backend.service`). It starts when the first
/// awaited call goes to the ring or the first awaited call is cancelled, sleeps on the
/// ring's descriptor while awaited calls are in the ring, wakes every interval `service`
/// asks for while it has work pending, and otherwise sleeps on an eventfd without timeout:
/// an idle context costs one sleeping thread and no wake-ups. Pool completions do not
/// need it (workers resume their tasks).
final class Harvester: @unchecked Sendable {
    // @unchecked: `backend`, `completions` and `descriptor` are immutable; the thread, the
    // wake eventfd and `stopping` are touched only under `state`'s lock; `sleepingIdle` is atomic.
    private let backend: any Backend
    private let completions: CompletionQueue
    /// The backend's `harvestDescriptor` (readable while completions wait in the ring);
    /// nil for backends without a ring.
    private let descriptor: Int32?
    /// Set while the thread sleeps for want of awaited calls in the ring.
    private let sleepingIdle = Atomic<Bool>(false)
    /// Set once the context has an executor, which reaps instead: the thread sleeps until stopped.
    private let parked = Atomic<Bool>(false)
    private let state = Locked(State())

    private struct State {
        var thread: pthread_t? = nil
        var wake: Int32 = -1
        var stopping = false
    }

    init(backend: any Backend, completions: CompletionQueue, descriptor: Int32?) {
        self.backend = backend
        self.completions = completions
        self.descriptor = descriptor
    }

    /// An awaited call went to the ring (its claim is counted already): makes sure the
    /// thread runs and is not asleep for want of work. Returns false when the thread cannot
    /// be started (no memory or threads left); the caller then reaps for itself.
    @inline(__always)
    func callWentToRing() -> Bool {
        if sleepingIdle.load(ordering: .sequentiallyConsistent) {
            wake()
            return true
        }
        return state.withLock { state -> Bool in
            if state.thread != nil || state.stopping { return true }
            return start(&state)
        }
    }

    /// Whether the backend has a ring for it to reap.
    var reapsRing: Bool { descriptor != nil }

    /// The context's executor reaps from now on: the thread, if it runs, goes to sleep
    /// until `stop` (what it was reaping, the executor's thread reaps now).
    func park() {
        parked.store(true, ordering: .sequentiallyConsistent)
        wake()
    }

    /// An awaited call was cancelled: the thread runs, and services the backend until the
    /// cancel needs no more asking. If it cannot start, the cancel was asked once.
    func cancelRequested() {
        let running = state.withLock { state -> Bool in
            if state.thread != nil { return true }
            if !state.stopping { _ = start(&state) }
            return false
        }
        if running { wake() }
    }

    /// Signals the eventfd, under the lock: `stop` closes it.
    private func wake() {
        state.withLock { state in
            if state.wake >= 0 { Housekeeping.signal(eventfd: state.wake) }
        }
    }

    private func start(_ state: inout State) -> Bool {
        let wake = laio_shim_eventfd()
        guard wake >= 0 else { return false }
        var thread = pthread_t()
        // Unretained: `stop` (run by the context's close and deinit) joins the thread
        // before the harvester can go.
        let me = Unmanaged.passUnretained(self).toOpaque()
        guard laio_shim_start_thread(&thread, { argument in
            Unmanaged<Harvester>.fromOpaque(argument!)._withUnsafeGuaranteedRef { $0.run() }
            return nil
        }, me, 256 * 1024) == 0 else {
            _ = Glibc.close(wake)
            return false
        }
        state.wake = wake
        state.thread = thread
        return true
    }

    /// Reaps until claimed call `handle` is reported, on the caller's thread: for when the
    /// harvester cannot start. It blocks the thread, but the task gets its answer.
    func reapUntilReported(_ handle: Handle, in completions: CompletionQueue) -> Result<Int, Errno> {
        while true {
            _ = backend.service()
            if let result = completions.takeResult(of: handle) { return result }
            if let descriptor { _ = Housekeeping.waitReadable(descriptor, nanoseconds: 1_000_000) }
        }
    }

    /// Stops and joins the thread. The context's backend is shut down first, so no
    /// awaited call is left for it.
    func stop() {
        let running = state.withLock { state -> (pthread_t, Int32)? in
            state.stopping = true
            guard let thread = state.thread else { return nil }
            state.thread = nil
            return (thread, state.wake)
        }
        guard let (thread, wake) = running else { return }
        Housekeeping.signal(eventfd: wake)
        pthread_join(thread, nil)
        // Under the lock, so that no `wake()` writes to the number once it is closed.
        state.withLock { state in
            _ = Glibc.close(wake)
            state.wake = -1
        }
    }

    private func run() {
        _ = laio_shim_block_signals()
        let wake = state.withLock { $0.wake }
        while true {
            // Signals before this are answered by the service below.
            Housekeeping.reset(eventfd: wake)
            if state.withLock({ $0.stopping }) { return }
            if parked.load(ordering: .sequentiallyConsistent) {
                _ = Housekeeping.waitReadable(wake, nanoseconds: nil)
                continue
            }
            // Reaps the ring; re-sends pending cancels. An interval: more of that is pending.
            let interval = backend.service()
            let ringWork = descriptor != nil && completions.untaggedClaimCount > 0
            if interval == nil && !ringWork {
                // Marked first, then looked again: a call that goes to the ring after the
                // mark sees it and signals (both sequentially consistent).
                sleepingIdle.store(true, ordering: .sequentiallyConsistent)
                if descriptor == nil || completions.untaggedClaimCount == 0 {
                    _ = Housekeeping.waitReadable(wake, nanoseconds: nil)
                }
                sleepingIdle.store(false, ordering: .sequentiallyConsistent)
                continue
            }
            if let descriptor, ringWork {
                _ = Housekeeping.waitReadable(wake, descriptor, nanoseconds: interval?.nanoseconds)
            } else {
                _ = Housekeeping.waitReadable(wake, nanoseconds: interval?.nanoseconds)
            }
        }
    }
}
