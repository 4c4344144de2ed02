#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import LAIOCore
import Synchronization
import SystemPackage

/// Settings of the `threads` backend.
public struct ThreadPoolSettings: Sendable, Equatable {
    /// Worker threads, started with the context. Each runs one blocking call at a time.
    public var workers: Int
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

    /// The most workers and the largest capacity accepted; beyond them creation fails
    /// with `EINVAL` instead of exhausting threads or memory.
    public static let maximumWorkers = 1024
    public static let maximumCapacity = 1 << 20

    /// The pool of the `auto` strategy when io_uring cannot be used: idle workers park at
    /// once, and there are 64 of them. It then carries every call that blocks (cached reads
    /// are answered inline before it), so a quick hand-off buys little and spinning workers
    /// take CPU from the ones doing I/O (measured in BENCHMARKS.md, "auto"); and on slow
    /// storage each call that waits holds a worker, so 16 made it the bound (BENCHMARKS.md,
    /// "Slow storage"). Parked workers cost a stack each, no CPU.
    public static let withoutUring = ThreadPoolSettings(workers: 64, idleSpin: .zero)

    /// Defaults measured on a 2-core machine (see README, "Choosing the defaults").
    public init(workers: Int = 16, lazyWindow: Duration = .microseconds(10), capacity: Int = 16_384,
                idleSpin: Duration = .microseconds(20)) {
        self.workers = workers
        self.lazyWindow = lazyWindow
        self.capacity = capacity
        self.idleSpin = idleSpin
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
    // @unchecked: shared mutable state lives in `state` (a lock); each Slot's fields say
    // what guards them; `slots` and `workers` are immutable arrays of reference objects.

    package let settings: ThreadPoolSettings
    private let completions: CompletionQueue
    private let windowNanoseconds: Int64
    private let idleSpinNanoseconds: Int64
    private let slots: [Slot]
    private let workers: [Worker]
    private let state: Locked<PoolState>
    /// Running operations with a cancellation request; lets `service()` skip its lock.
    private let pendingCancels = Atomic<Int>(0)
    private let cancelSignal: Int32
    /// Whether every handle this pool gives out carries the route tag (see `Handle`'s layout).
    private let tagsHandles: Bool

    /// Free slots: pushed by anyone without the lock, popped only under the lock.
    private let freeSlots: FreeList

    private struct PoolState {
        var queue = Ring<Int32>(initialCapacity: 256)
        var idle: [Int32] = []
        var cancelling: [Int32] = []
        var closing = false
        var liveWorkers = 0
    }

    /// Starts the pool's workers. Throws `EINVAL` for non-positive settings, or the errno of
    /// a failed thread start or signal-handler installation.
    ///
    /// Handles carry no route tag, except that `tagHandles` sets it in every one, so that a
    /// strategy sharing one completion queue with another backend can tell whose they are.
    package init(settings: ThreadPoolSettings, completions: CompletionQueue, tagHandles: Bool = false,
                 cancelSignal: Int32 = laio_shim_default_cancel_signal()) throws(Errno) {
        guard settings.workers > 0, settings.workers <= ThreadPoolSettings.maximumWorkers, settings.capacity > 0,
              settings.lazyWindow >= .zero, settings.idleSpin >= .zero,
              settings.capacity <= ThreadPoolSettings.maximumCapacity
        else { throw .invalidArgument }
        // EBUSY: the application has a handler on the signal, which is never replaced.
        let installed = laio_shim_install_cancel_handler(cancelSignal)
        guard installed == 0 else { throw Errno(rawValue: -installed) }
        self.cancelSignal = cancelSignal
        self.settings = settings
        self.completions = completions
        self.tagsHandles = tagHandles
        self.windowNanoseconds = settings.lazyWindow.nanoseconds
        self.idleSpinNanoseconds = settings.idleSpin.nanoseconds
        self.slots = (0..<settings.capacity).map { _ in Slot() }
        self.workers = (0..<settings.workers).map { _ in Worker() }
        self.freeSlots = FreeList(slots: slots)
        self.state = Locked(PoolState())
        for index in workers.indices {
            do throws(Errno) {
                try start(worker: Int32(index))
            } catch {
                shutdown()
                throw error
            }
        }
    }

    deinit { shutdown() }

    package var details: String {
        "thread pool: \(settings.workers) workers, lazy window \(settings.lazyWindow.nanoseconds / 1000) µs, "
            + "capacity \(settings.capacity)"
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
                return .handed(index, worker)
            }
            slot.status = .queued
            state.queue.append(index)
            return .queued(index)
        }
        let index: Int32
        switch dispatch {
        case .closed:
            completions.release()
            throw .badFileDescriptor
        case let .handed(slotIndex, worker):
            workers[Int(worker)].deliver(slotIndex)
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

    private enum Dispatch { case closed, handed(Int32, Int32), queued(Int32) }

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
                // Under the lock: a worker leaves its loop (and may be joined) only after
                // taking it, so the thread is alive here.
                _ = pthread_kill(workers[Int(worker)].thread, cancelSignal)
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
        guard pendingCancels.load(ordering: .relaxed) > 0 else { return nil }
        reassertCancels()
        return .milliseconds(1)
    }

    /// Re-sends the cancel signal to every worker still running a cancelled call.
    private func reassertCancels() {
        state.withLock { state in
            for index in state.cancelling {
                if case let .running(worker) = slots[Int(index)].status {
                    _ = pthread_kill(workers[Int(worker)].thread, cancelSignal)
                }
            }
        }
    }

    // MARK: Shutting down

    package func shutdown() {
        let (first, cancelled) = state.withLock { state -> (Bool, [Handle]) in
            guard !state.closing else { return (false, []) }
            state.closing = true
            // Queued background calls leave the queue, freed; calls in a caller's lazy window
            // stay for a worker to run.
            var cancelled: [Handle] = []
            var kept = Ring<Int32>(initialCapacity: max(state.queue.count, 1))
            while let index = state.queue.popFirst() {
                if slots[Int(index)].phase.load(ordering: .acquiring) == Phase.detached {
                    cancelled.append(handle(of: index))
                    free(index, in: &state)
                } else {
                    kept.append(index)
                }
            }
            state.queue = kept
            for worker in state.idle { workers[Int(worker)].deliver(Mailbox.recheck) }
            state.idle.removeAll()
            return (true, cancelled)
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
                    _ = pthread_kill(workers[Int(worker)].thread, cancelSignal)
                }
                return state.liveWorkers
            }
            if live == 0 { break }
            var pause = timespec(tv_sec: 0, tv_nsec: 500_000)
            _ = nanosleep(&pause, nil)
        }
        // A worker that has left its loop touches nothing of the caller's; the first
        // caller of shutdown reaps the threads.
        if first {
            for worker in workers {
                if let thread = worker.joinHandle { pthread_join(thread, nil) }
            }
        }
    }

    // MARK: Workers

    private func start(worker index: Int32) throws(Errno) {
        state.withLock { $0.liveWorkers += 1 }
        // Retained here and taken back exactly once: by the new thread, or below if it never starts.
        let context = Unmanaged.passRetained(WorkerStart(pool: self, index: index)).toOpaque()
        var thread = pthread_t()
        // Every signal blocked until the worker sets its own mask: no handler of the
        // application runs on a worker.
        let rc = laio_shim_start_thread(&thread, { argument in
            let start = Unmanaged<WorkerStart>.fromOpaque(argument!).takeRetainedValue()
            start.pool.workerLoop(start.index)
            return nil
        }, context, 256 * 1024)
        guard rc == 0 else {
            Unmanaged<WorkerStart>.fromOpaque(context).release()
            state.withLock { $0.liveWorkers -= 1 }
            throw Errno(rawValue: rc)
        }
        workers[Int(index)].joinHandle = thread
    }

    private func workerLoop(_ me: Int32) {
        _ = laio_shim_worker_sigmask()
        let worker = workers[Int(me)]
        worker.thread = pthread_self()  // published to cancellers by the lock below
        // A background call this worker finished: its slot is freed under the next lock,
        // and only then is its completion reported, so that a slot is free again before
        // poll can hand the completion out and return its credit.
        var finished: (index: Int32, completion: Completion)? = nil
        while true {
            let next = state.withLock { state -> Int32? in
                if let finished { free(finished.index, in: &state) }
                if let index = state.queue.popFirst() {
                    slots[Int(index)].status = .running(me)
                    return index
                }
                if state.closing {
                    state.liveWorkers -= 1
                    return nil
                }
                state.idle.append(me)
                return -1
            }
            if let done = finished {
                completions.push(done.completion)
                finished = nil
            }
            guard var index = next else { return }
            if index < 0 {
                index = worker.collect(spinningFor: idleSpinNanoseconds)
                if index < 0 { continue }
            }
            if let completion = run(index) { finished = (index, completion) }
        }
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
    // the lock or semaphore that published it); `result` is written by the worker before
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

/// A worker thread and its mailbox: an idle worker spins on the mailbox for a while,
/// then parks on its semaphore. Delivering wakes it only if it parked.
private final class Worker: @unchecked Sendable {
    // @unchecked: `mailbox` is atomic; `thread` is written by the worker before it first
    // takes the pool's lock and read by cancellers under that lock; `joinHandle` is written
    // by the pool's initializer before the pool is shared. The semaphore is thread-safe.
    let semaphore: UnsafeMutablePointer<sem_t>
    let mailbox = Atomic<Int32>(Mailbox.empty)
    var thread = pthread_t()
    var joinHandle: pthread_t?

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

    /// Waits for the next delivery: spins for `spin` nanoseconds, then parks.
    func collect(spinningFor spin: Int64) -> Int32 {
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
            Housekeeping.wait(semaphore)
        }
        let value = mailbox.exchange(Mailbox.empty, ordering: .acquiring)
        return value
    }

    deinit {
        // Safe: the pool joins this worker before it lets go of it.
        sem_destroy(semaphore)
        semaphore.deallocate()
    }
}

private final class WorkerStart {
    let pool: ThreadPoolBackend
    let index: Int32
    init(pool: ThreadPoolBackend, index: Int32) { self.pool = pool; self.index = index }
}
