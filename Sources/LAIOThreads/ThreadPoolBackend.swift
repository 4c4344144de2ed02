#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import LAIOCore
import Synchronization
import SystemPackage

/// Settings of the `threads` backend, and of the pool behind `auto`.
///
/// The pool keeps a continuation for every call that blocks: a call handed over while no
/// worker is free gets a new worker at once (started by the submitter, or by a worker that
/// is starting already: new workers start more while calls wait), up to `maximumWorkers`;
/// beyond that bound calls wait their turn in order (none fails). Workers beyond `minimumWorkers` exit after
/// `keepAlive` without work. A worker has a small stack (`workerStackSize`): it runs one
/// system call at a time.
public struct ThreadPoolSettings: Sendable, Equatable {
    /// Workers started with the context and kept while idle. At least 1.
    public var minimumWorkers: Int
    /// The most workers at once. Default: `defaultMaximumWorkers`, from the process's limits.
    public var maximumWorkers: Int
    /// How long a worker beyond `minimumWorkers` waits for new work before it exits.
    public var keepAlive: Duration
    /// How long `submit` waits for the worker before answering `.inProgress`. A call that
    /// finishes within the window is returned synchronously, as if it had not blocked.
    /// Zero never waits: a call is then synchronous only if its worker finished it before
    /// `submit` looked.
    public var lazyWindow: Duration
    /// The most operations that may be outstanding (queued, running, or completed and not
    /// yet returned by poll); past it `submit` throws `EAGAIN`.
    public var capacity: Int
    /// How long an idle worker keeps looking for new work before it sleeps. Within it a
    /// hand-off costs a cache-line transfer instead of a futex wake-up and a scheduler trip.
    public var idleSpin: Duration

    /// The largest `maximumWorkers` and `capacity` accepted; beyond them creation fails with
    /// `EINVAL` instead of exhausting threads or memory.
    public static let workerLimit = 16_384
    public static let maximumCapacity = 1 << 20

    /// The default bound on workers: `ProcessLimits.threadBound` (4,096, or less where the
    /// process's limits would run out first).
    public static let defaultMaximumWorkers = ProcessLimits.threadBound

    /// The stack of a worker thread: a worker runs one system call and the pool's loop.
    /// Only the pages it touches are resident (BENCHMARKS.md, "Crowd").
    public static let workerStackSize = 128 * 1024

    /// The pool of the `auto` strategy when io_uring cannot be used: it then carries every
    /// call that blocks (cached reads are answered inline before it), so idle workers park
    /// at once (spinning ones would take CPU from the ones doing I/O) and a few are kept.
    public static let withoutUring = ThreadPoolSettings(minimumWorkers: 4, idleSpin: .zero)

    /// The pool of the `auto` strategy beside io_uring: it carries only what io_uring does
    /// not run (sendfile, raw system calls), so it keeps two workers.
    public static let besideUring = ThreadPoolSettings(minimumWorkers: 2)

    /// Defaults measured on a 2-core machine (see BENCHMARKS.md).
    public init(minimumWorkers: Int = 16, maximumWorkers: Int = ThreadPoolSettings.defaultMaximumWorkers,
                keepAlive: Duration = .seconds(10), lazyWindow: Duration = .microseconds(10),
                capacity: Int = 16_384, idleSpin: Duration = .microseconds(20)) {
        self.minimumWorkers = minimumWorkers
        self.maximumWorkers = maximumWorkers
        self.keepAlive = keepAlive
        self.lazyWindow = lazyWindow
        self.capacity = capacity
        self.idleSpin = idleSpin
    }

    /// A pool of exactly `workers` threads, started with the context and never more.
    public init(workers: Int, lazyWindow: Duration = .microseconds(10), capacity: Int = 16_384,
                idleSpin: Duration = .microseconds(20)) {
        self.init(minimumWorkers: workers, maximumWorkers: workers, lazyWindow: lazyWindow,
                  capacity: capacity, idleSpin: idleSpin)
    }

    /// Whether the settings are in range (see each property).
    var isValid: Bool {
        minimumWorkers > 0 && minimumWorkers <= maximumWorkers && maximumWorkers <= Self.workerLimit
            && capacity > 0 && capacity <= Self.maximumCapacity
            && lazyWindow >= .zero && idleSpin >= .zero && keepAlive >= .zero
    }
}

/// The `threads` backend: the eager thread pool of liblaiogen.
///
/// Every call is handed to a worker at once. The caller then waits a bounded lazy window;
/// a call that finishes inside it is returned synchronously, any other continues in the
/// background and its completion reaches the context's `CompletionQueue`. Cancelling a
/// queued call removes it; cancelling a running one interrupts its worker with a real-time
/// signal (re-sent by `service()` until the call returns, so a signal that lands just before
/// the worker enters the kernel is not lost).
package final class ThreadPoolBackend: Backend, @unchecked Sendable {
    // @unchecked: shared mutable state lives in `state` (a lock); each Slot's and Worker's
    // fields say what guards them; `slots` is an immutable array of reference objects.

    package let settings: ThreadPoolSettings
    private let completions: CompletionQueue
    private let windowNanoseconds: Int64
    private let idleSpinNanoseconds: Int64
    private let keepAliveNanoseconds: Int64
    private let slots: [Slot]
    private let state: Locked<PoolState>
    /// Running operations with a cancellation request; lets `service()` skip its lock.
    private let pendingCancels = Atomic<Int>(0)
    /// Workers that have finished a call and not yet come back for the next (under the
    /// lock): each will take a queued call within moments, so none is started for it.
    private let returning = Atomic<Int>(0)
    /// Set when a worker could not start (EAGAIN) while calls waited; `service()` tries again.
    private let startRefused = Atomic<Bool>(false)
    private let cancelSignal: Int32
    /// Whether every handle this pool gives out carries the route tag (see `Handle`'s layout).
    private let tagsHandles: Bool

    /// Free slots: pushed by anyone without the lock, popped only under the lock.
    private let freeSlots: FreeList

    private struct PoolState {
        var queue = FIFO<Int32>(initialCapacity: 256)
        /// Idle workers, the most recently idle last: work goes to the last, so the ones
        /// idle longest are the ones whose keep-alive runs out.
        var idle: [Int32] = []
        var cancelling: [Int32] = []
        var closing = false
        /// Workers started and not yet exited.
        var liveWorkers = 0
        /// Of those, the ones that have not yet looked at the queue: each will take a call.
        var startingWorkers = 0
        var peakWorkers = 0
        /// Every worker record made so far, and the ones without a thread. A record is
        /// reused by the next worker after its thread retired.
        var workers: [Worker] = []
        var freeWorkers: [Int32] = []
    }

    /// Starts the pool's minimum of workers. Throws `EINVAL` for settings out of range, or
    /// the errno of a failed thread start or signal-handler installation.
    ///
    /// Handles carry no route tag, except that `tagHandles` sets it in every one, so that a
    /// strategy sharing one completion queue with another backend can tell whose they are.
    package init(settings: ThreadPoolSettings, completions: CompletionQueue, tagHandles: Bool = false,
                 cancelSignal: Int32 = laio_shim_default_cancel_signal()) throws(Errno) {
        guard settings.isValid else { throw .invalidArgument }
        // EBUSY: the application has a handler on the signal, which is never replaced.
        let installed = laio_shim_install_cancel_handler(cancelSignal)
        guard installed == 0 else { throw Errno(rawValue: -installed) }
        self.cancelSignal = cancelSignal
        self.settings = settings
        self.completions = completions
        self.tagsHandles = tagHandles
        self.windowNanoseconds = settings.lazyWindow.nanoseconds
        self.idleSpinNanoseconds = settings.idleSpin.nanoseconds
        self.keepAliveNanoseconds = settings.keepAlive.nanoseconds
        self.slots = (0..<settings.capacity).map { _ in Slot() }
        self.freeSlots = FreeList(slots: slots)
        self.state = Locked(PoolState())
        for _ in 0..<settings.minimumWorkers {
            let (index, worker) = state.withLock { reserveWorker(&$0) }
            if let error = start(index, worker) {
                shutdown()
                throw error
            }
        }
    }

    deinit { shutdown() }

    package var details: String {
        let (live, peak) = workerCounts
        return "thread pool: \(live) workers (\(settings.minimumWorkers) kept, at most \(settings.maximumWorkers), "
            + "peak \(peak), keep-alive \(settings.keepAlive.nanoseconds / 1_000_000) ms), lazy window "
            + "\(settings.lazyWindow.nanoseconds / 1000) µs, capacity \(settings.capacity)"
    }

    /// Workers alive now (counting those starting), and the most that have run at once.
    package var workerCounts: (live: Int, peak: Int) {
        state.withLock { ($0.liveWorkers, $0.peakWorkers) }
    }

    package func route(for kind: OperationKind) -> RoutePlan { RoutePlan(inlineFirst: false, destination: .threads) }

    // MARK: Submitting

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

    // MARK: Cancelling

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

    /// Tries again to start a worker for waiting calls after a start was refused. Returns
    /// true when no more tries are needed (a worker started, or no call waits for one).
    private func retryStart() -> Bool {
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

    // MARK: Workers

    /// Takes a worker record for a thread about to start and counts it. Called with the
    /// pool's lock held.
    private func reserveWorker(_ state: inout PoolState) -> (Int32, Worker) {
        state.liveWorkers += 1
        state.startingWorkers += 1
        if let index = state.freeWorkers.popLast() { return (index, state.workers[Int(index)]) }
        state.workers.append(Worker())
        return (Int32(state.workers.count - 1), state.workers[state.workers.count - 1])
    }

    /// Starts the thread of a reserved worker, detached. On failure the reservation is
    /// undone and the errno returned.
    private func start(_ index: Int32, _ worker: Worker) -> Errno? {
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

    private func workerLoop(_ me: Int32, _ worker: Worker) {
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

    /// Waits as an idle worker for a delivery: a slot index or `Mailbox.recheck`. Returns
    /// nil when the worker retired instead: the keep-alive ran out with more workers than
    /// the minimum and nothing on its way to this one.
    private func waitForWork(_ me: Int32, _ worker: Worker) -> Int32? {
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
    private func retire(_ me: Int32, _ state: inout PoolState) {
        state.liveWorkers -= 1
        state.freeWorkers.append(me)
    }

    /// Runs the call in slot `index`. Returns its completion if this worker must report it
    /// (the caller detached), after freeing the slot; nil if the caller took the result.
    private func run(_ index: Int32) -> Completion? {
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

    /// The handle of slot `index`'s current use: tag | (generation mod 2^31) << 32 | (index + 1).
    /// Never zero, and unique while the slot is in use.
    private func handle(of index: Int32) -> Handle {
        Handle(slot: Int(index), generation: slots[Int(index)].generation, routeTagged: tagsHandles)
    }

    /// Returns slot `index` to the free list. Called with the pool's lock held.
    private func free(_ index: Int32, in state: inout PoolState) {
        let slot = slots[Int(index)]
        slot.status = .free
        if slot.cancelRequested.load(ordering: .relaxed),
           let position = state.cancelling.firstIndex(of: index) {
            state.cancelling.remove(at: position)
            pendingCancels.wrappingSubtract(1, ordering: .relaxed)
        }
        freeSlots.push(index)
    }
}

/// The hand-off marks between a submitting caller and the worker running its call.
private enum Phase {
    static let waiting: UInt8 = 0   // the caller is in its lazy window
    static let done: UInt8 = 1      // the worker has stored the result
    static let detached: UInt8 = 2  // the caller returned .inProgress
}

/// A stack of free slot indices (Treiber). Pushes come from any thread without a lock;
/// pops happen only under the pool's lock, so there is one popper at a time and a popped
/// index cannot come back during a pop (no ABA).
private final class FreeList: Sendable {
    private let head = Atomic<UInt32>(0)  // index + 1 of the top slot; 0 when empty
    private let slots: [Slot]

    /// Starts with every slot free.
    init(slots: [Slot]) {
        self.slots = slots
        for index in slots.indices.reversed() { push(Int32(index)) }
    }

    func push(_ index: Int32) {
        var top = head.load(ordering: .relaxed)
        while true {
            slots[Int(index)].nextFree.store(top, ordering: .relaxed)
            let (exchanged, current) = head.compareExchange(expected: top, desired: UInt32(index + 1), ordering: .releasing)
            if exchanged { return }
            top = current
        }
    }

    /// Pops a free slot. Call only with the pool's lock held, and only when one is free.
    func pop() -> Int32 {
        var top = head.load(ordering: .acquiring)
        while true {
            precondition(top != 0, "no free slot although a credit was taken")
            let next = slots[Int(top - 1)].nextFree.load(ordering: .relaxed)
            let (exchanged, current) = head.compareExchange(expected: top, desired: next, ordering: .acquiring)
            if exchanged { return Int32(top - 1) }
            top = current
        }
    }
}

/// One operation's place in the pool, reused after its completion is delivered.
private final class Slot: @unchecked Sendable {
    // @unchecked: `phase` and `cancelRequested` are atomics; `generation`, `status` and
    // `operation` are written under the pool's lock (the worker reads `operation` after
    // the lock, or the mailbox's release-acquire exchange, that published it); `result` is written by the worker before
    // its release-exchange of `phase` and read by the caller after its acquire.
    let phase = Atomic<UInt8>(0)
    let cancelRequested = Atomic<Bool>(false)
    /// The next free slot (index + 1) while this one is on the free list.
    let nextFree = Atomic<UInt32>(0)
    var generation: UInt32 = 0
    var status: Status = .free
    var operation: Operation = .syscall(number: -1)
    var result = 0

    enum Status: Equatable { case free, queued, running(Int32) }
}

/// The values of a worker's mailbox other than a slot index.
private enum Mailbox {
    static let empty: Int32 = -2     // idle, nothing delivered yet
    static let sleeping: Int32 = -3  // idle and parked on the semaphore
    static let recheck: Int32 = -1   // look at the pool's state again (shutdown)
}

/// A worker thread's record and mailbox: an idle worker spins on the mailbox for a while,
/// then parks on its semaphore. Delivering wakes it only if it parked. A record outlives
/// its thread and is reused by the next one (the pool keeps every record until deinit).
private final class Worker: @unchecked Sendable {
    // @unchecked: `mailbox` is atomic; `thread` is written by the worker before it first
    // takes the pool's lock and read by cancellers under that lock, while the worker runs a
    // call. The semaphore is thread-safe.
    // A pointer: a sem_t must not move while threads wait on it; freed in deinit.
    let semaphore: UnsafeMutablePointer<sem_t>
    let mailbox = Atomic<Int32>(Mailbox.empty)
    var thread = pthread_t()

    init() {
        semaphore = .allocate(capacity: 1)
        sem_init(semaphore, 0, 0)
    }

    /// Hands `value` (a slot index or `Mailbox.recheck`) to this idle worker. The release
    /// publishes the slot's fields, which the submitter wrote under the pool's lock.
    func deliver(_ value: Int32) {
        if mailbox.exchange(value, ordering: .acquiringAndReleasing) == Mailbox.sleeping {
            sem_post(semaphore)
        }
    }

    /// Waits for the next delivery: spins for `spin` nanoseconds, then parks, for at most
    /// `patience` nanoseconds (nil: without limit). Returns nil when the patience ran out
    /// with nothing delivered; the mailbox is then empty and nothing is posted.
    func collect(spinningFor spin: Int64, parkingFor patience: Int64?) -> Int32? {
        let deadline = spin > 0 ? monotonicNanoseconds() &+ spin : 0
        var spins = 0
        while true {
            let value = mailbox.load(ordering: .acquiring)
            if value != Mailbox.empty {
                mailbox.store(Mailbox.empty, ordering: .relaxed)
                return value
            }
            spins &+= 1
            if spins & 63 == 0 && monotonicNanoseconds() >= deadline { break }
        }
        if mailbox.compareExchange(expected: Mailbox.empty, desired: Mailbox.sleeping,
                                   ordering: .acquiringAndReleasing).exchanged {
            if let patience {
                if !Housekeeping.wait(semaphore, nanoseconds: patience) {
                    // Out of patience. Unless a delivery came meanwhile (then its post has
                    // come or is coming, and is taken here), the wait ends empty-handed.
                    if mailbox.compareExchange(expected: Mailbox.sleeping, desired: Mailbox.empty,
                                               ordering: .acquiringAndReleasing).exchanged {
                        return nil
                    }
                    Housekeeping.wait(semaphore)
                }
            } else {
                Housekeeping.wait(semaphore)
            }
        }
        return mailbox.exchange(Mailbox.empty, ordering: .acquiring)
    }

    deinit {
        // Safe: records live as long as the pool, which every worker thread keeps alive
        // until it has left its loop.
        sem_destroy(semaphore)
        semaphore.deallocate()
    }
}

private final class WorkerStart {
    let pool: ThreadPoolBackend
    let index: Int32
    let worker: Worker
    init(pool: ThreadPoolBackend, index: Int32, worker: Worker) {
        self.pool = pool
        self.index = index
        self.worker = worker
    }
}
