#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import LAIOCore
import Synchronization
import SystemPackage

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
    let completions: CompletionQueue
    let windowNanoseconds: Int64
    let idleSpinNanoseconds: Int64
    let keepAliveNanoseconds: Int64
    let slots: [Slot]
    let state: Locked<PoolState>
    /// Running operations with a cancellation request; lets `service()` skip its lock.
    let pendingCancels = Atomic<Int>(0)
    /// Workers that have finished a call and not yet come back for the next (under the
    /// lock): each will take a queued call within moments, so none is started for it.
    let returning = Atomic<Int>(0)
    /// Set when a worker could not start (EAGAIN) while calls waited; `service()` tries again.
    let startRefused = Atomic<Bool>(false)
    let cancelSignal: Int32
    /// Whether every handle this pool gives out carries the route tag (see `Handle`'s layout).
    let tagsHandles: Bool

    /// Free slots: pushed by anyone without the lock, popped only under the lock.
    let freeSlots: FreeList

    struct PoolState {
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

    /// The handle of slot `index`'s current use: tag | (generation mod 2^31) << 32 | (index + 1).
    /// Never zero, and unique while the slot is in use.
    func handle(of index: Int32) -> Handle {
        Handle(slot: Int(index), generation: slots[Int(index)].generation, routeTagged: tagsHandles)
    }

    /// Returns slot `index` to the free list. Called with the pool's lock held.
    func free(_ index: Int32, in state: inout PoolState) {
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
