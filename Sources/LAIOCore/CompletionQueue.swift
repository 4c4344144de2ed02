#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import Synchronization
import SystemPackage

/// The one queue through which every background completion of a context reaches `poll`,
/// with a notification descriptor that is readable exactly while completions wait.
///
/// Memory is bounded by credits: a backend takes one before an operation may go to the
/// background and the credit returns when `poll` hands the completion out (or its task
/// takes it). `reserve` never lets more than `capacity` be outstanding. A backend that looks
/// first (`hasCredit`) and takes later (`take`) may overshoot: each submitter that looked
/// while another was between its look and its take adds at most one, so the queue holds at
/// most `capacity` completions plus one per such concurrent submitter (`auto` shares one
/// queue between its ring and its pool). The FIFOs grow past their first size as needed.
///
/// A background call a task awaits (`Context.perform`) is *claimed*: its backend calls
/// `claim` with its handle before the call can finish, and its completion then goes to
/// the task instead of to `pending`, so poll never sees it, and no task is resumed by a
/// completion that was not claimed. Its credit returns as soon as it is reported.
package final class CompletionQueue: Sendable {
    private struct State {
        var pending = FIFO<Completion>(initialCapacity: 64)
        /// Claimed calls by handle (each holds a credit).
        var claims: [Handle: Claim] = [:]
        /// Tasks whose call finished, to be resumed once the caller's locks are released
        /// (`resumeDeferred`). One per claim at most.
        var deferred = FIFO<(Continuation, Result<Int, Errno>)>(initialCapacity: 16)
        /// Tasks waiting for a free credit (`waitForRoom`), first come first served.
        var roomWaiters = FIFO<RoomWaiter>(initialCapacity: 16)
        var nextRoomTicket: UInt64 = 0
        /// `close` has ended the waits for room: later ones end at once.
        var roomClosed = false
    }

    /// How a task waits for its call: the continuation `Context.perform` suspends on.
    package typealias Continuation = UnsafeContinuation<Result<Int, Errno>, Never>

    /// The state of a claimed call.
    private enum Claim {
        /// Neither its completion nor its task has arrived.
        case unresolved
        /// It finished before its task came to wait.
        case resolved(Result<Int, Errno>)
        /// Its task waits.
        case waiting(Continuation)
    }

    /// How a wait for room ends.
    package enum RoomWake: Sendable {
        /// A credit came back: try again.
        case room
        /// The waiting task was cancelled.
        case cancelled
        /// The context was closed.
        case closed
    }

    private struct RoomWaiter {
        var ticket: UInt64
        var continuation: UnsafeContinuation<RoomWake, Never>
    }

    private let state = Locked(State())
    /// Operations that went (or are going) to the background and were not yet returned by poll.
    @usableFromInline
    let outstanding = Atomic<Int>(0)
    /// The most operations that may be outstanding at once.
    package let capacity: Int
    /// An eventfd that is readable while completions wait. Written on the empty → non-empty
    /// transition and drained on the non-empty → empty one, both under the queue's lock,
    /// so its state always matches the queue's.
    package let notificationDescriptor: Int32
    /// Claims of calls that are not route-tagged (on `uring` and `auto`: calls in the ring),
    /// which somebody must reap for their tasks when nobody polls.
    private let untaggedClaims = Atomic<Int>(0)
    /// Tasks in `deferred`; lets `resumeDeferred` return at the cost of one load.
    private let deferredCount = Atomic<Int>(0)
    /// Tasks in `roomWaiters`; lets a returned credit skip the lock when nobody waits.
    private let roomWaiting = Atomic<Int>(0)

    /// Creates a queue for at most `capacity` outstanding operations.
    package init(capacity: Int) throws(Errno) {
        precondition(capacity > 0, "capacity must be positive")
        let fd = laio_shim_eventfd()
        guard fd >= 0 else { throw Errno(rawValue: -fd) }
        self.notificationDescriptor = fd
        self.capacity = capacity
    }

    deinit { _ = Glibc.close(notificationDescriptor) }

    /// The number of operations that went to the background and were not yet returned by poll.
    package var outstandingCount: Int { outstanding.load(ordering: .relaxed) }

    /// Takes one credit for an operation that may go to the background.
    /// Throws `EAGAIN` when `capacity` operations are outstanding.
    package func reserve() throws(Errno) {
        if outstanding.wrappingAdd(1, ordering: .relaxed).oldValue >= capacity {
            outstanding.wrappingSubtract(1, ordering: .relaxed)
            throw .resourceTemporarilyUnavailable
        }
    }

    /// Whether a credit is free now. A backend that serialises its submissions may look
    /// first and `take()` the credit only once an operation really goes to the background;
    /// concurrent submitters of different backends can then overshoot `capacity` by at most
    /// one operation each.
    @inlinable
    package var hasCredit: Bool { outstanding.load(ordering: .relaxed) < capacity }

    /// Takes a credit without checking (see `hasCredit`).
    package func take() {
        outstanding.wrappingAdd(1, ordering: .relaxed)
    }

    /// Gives back a credit whose operation completed synchronously after all.
    package func release() {
        outstanding.wrappingSubtract(1, ordering: .sequentiallyConsistent)
        if roomWaiting.load(ordering: .sequentiallyConsistent) > 0 { wakeRoomWaiter() }
    }

    /// Adds a completion: to the task that claimed it, whose credit returns now, or to the
    /// queue, where its credit returns when poll hands it out.
    ///
    /// The task is resumed once the queue's lock is released; with `deferringResumption`
    /// (for callers that hold a lock of their own) only by `resumeDeferred()`, which such a
    /// caller runs once its lock is released, so that no task runs on, or waits for, a
    /// thread inside the library's locks.
    package func push(_ completion: Completion, deferringResumption: Bool = false) {
        let resume = state.withLock { state -> Continuation? in
            if !state.claims.isEmpty, let claim = state.claims[completion.handle] {
                switch claim {
                case .unresolved:
                    state.claims[completion.handle] = .resolved(completion.result)
                    return nil
                case let .waiting(continuation):
                    state.claims[completion.handle] = nil
                    if !completion.handle.isRouteTagged { untaggedClaims.wrappingSubtract(1, ordering: .relaxed) }
                    if deferringResumption {
                        state.deferred.append((continuation, completion.result))
                        deferredCount.wrappingAdd(1, ordering: .releasing)
                        return nil
                    }
                    return continuation
                case .resolved:
                    preconditionFailure("a claimed call was reported twice: \(completion.handle)")
                }
            }
            state.pending.append(completion)
            if state.pending.count == 1 { signal() }
            return nil
        }
        guard let resume else { return }
        release()
        resume.resume(returning: completion.result)
    }

    /// Resumes the tasks that `push(_:deferringResumption: true)` set aside.
    @inline(__always)
    package func resumeDeferred() {
        if deferredCount.load(ordering: .acquiring) > 0 { resumeDeferredSlowly() }
    }

    private func resumeDeferredSlowly() {
        while let (continuation, result) = state.withLock({ state -> (Continuation, Result<Int, Errno>)? in
            guard let next = state.deferred.popFirst() else { return nil }
            deferredCount.wrappingSubtract(1, ordering: .relaxed)
            return next
        }) {
            release()
            continuation.resume(returning: result)
        }
    }

    // MARK: Claims

    /// Claims the background call `handle` for a task (see the type's documentation). The
    /// backend calls this before the call can finish; a call that finished synchronously
    /// after all is given back with `unclaim`.
    package func claim(_ handle: Handle) {
        state.withLock { state in
            state.claims[handle] = .unresolved
            if !handle.isRouteTagged { untaggedClaims.wrappingAdd(1, ordering: .sequentiallyConsistent) }
        }
    }

    /// Gives back the claim of a call that completed synchronously after all.
    package func unclaim(_ handle: Handle) {
        state.withLock { state in
            if state.claims.removeValue(forKey: handle) != nil, !handle.isRouteTagged {
                untaggedClaims.wrappingSubtract(1, ordering: .relaxed)
            }
        }
    }

    /// The number of claimed calls that are not route-tagged and not reported yet.
    package var untaggedClaimCount: Int { untaggedClaims.load(ordering: .sequentiallyConsistent) }

    /// The result of claimed call `handle` if it has finished (the claim ends then), else nil.
    package func takeResult(of handle: Handle) -> Result<Int, Errno>? {
        let result = state.withLock { state -> Result<Int, Errno>? in
            guard case let .resolved(result) = state.claims[handle] else { return nil }
            state.claims[handle] = nil
            if !handle.isRouteTagged { untaggedClaims.wrappingSubtract(1, ordering: .relaxed) }
            return result
        }
        if result != nil { release() }
        return result
    }

    /// Hands `continuation` the result of claimed call `handle`: at once if it has
    /// finished, else when it is pushed.
    package func wait(for handle: Handle, with continuation: Continuation) {
        let result = state.withLock { state -> Result<Int, Errno>? in
            switch state.claims[handle] {
            case let .resolved(result):
                state.claims[handle] = nil
                if !handle.isRouteTagged { untaggedClaims.wrappingSubtract(1, ordering: .relaxed) }
                return result
            case .unresolved:
                state.claims[handle] = .waiting(continuation)
                return nil
            case .waiting, nil:
                preconditionFailure("awaiting a call that is not claimed: \(handle)")
            }
        }
        if let result {
            release()
            continuation.resume(returning: result)
        }
    }

    // MARK: Waiting for room

    /// Whether tasks wait for room (a new waiter queues behind them).
    package var hasRoomWaiters: Bool { roomWaiting.load(ordering: .relaxed) > 0 }

    /// How many tasks wait for room now.
    package var roomWaiterCount: Int { roomWaiting.load(ordering: .sequentiallyConsistent) }

    /// Suspends until a credit comes back, the task is cancelled (when `cancellable`), or
    /// `closeRoom` runs; in
    /// the order of arrival, or at the front with `first` (a woken waiter that lost its
    /// credit to a synchronous submit keeps its place). Returns `.room` at once when a
    /// credit is free when it looks.
    nonisolated(nonsending) package func waitForRoom(first: Bool, cancellable: Bool = true) async -> RoomWake {
        let ticket = state.withLock { state -> UInt64 in
            state.nextRoomTicket &+= 1
            return state.nextRoomTicket
        }
        guard cancellable else {
            return await withUnsafeContinuation { queueForRoom($0, ticket: ticket, first: first, cancellable: false) }
        }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { queueForRoom($0, ticket: ticket, first: first, cancellable: true) }
        } onCancel: {
            let found = state.withLock { state -> UnsafeContinuation<RoomWake, Never>? in
                var found: UnsafeContinuation<RoomWake, Never>? = nil
                state.roomWaiters.removeFirst { waiter in
                    guard waiter.ticket == ticket else { return false }
                    found = waiter.continuation
                    return true
                }
                if found != nil { roomWaiting.wrappingSubtract(1, ordering: .relaxed) }
                return found
            }
            found?.resume(returning: .cancelled)
        }
    }

    /// Puts a waiter in line for room, or resumes it at once when it need not wait.
    private func queueForRoom(_ continuation: UnsafeContinuation<RoomWake, Never>, ticket: UInt64, first: Bool, cancellable: Bool) {
        let now = state.withLock { state -> RoomWake? in
            if state.roomClosed { return .closed }
            // Under the lock that the cancellation handler takes: a cancel that came before
            // this look found no waiter to end, so it is seen here instead.
            if cancellable && Task.isCancelled { return .cancelled }
            // Counted first, then the credits looked at; a credit returned after is seen by
            // its `release` (both sequentially consistent).
            roomWaiting.wrappingAdd(1, ordering: .sequentiallyConsistent)
            if outstanding.load(ordering: .sequentiallyConsistent) < capacity && (first || state.roomWaiters.isEmpty) {
                roomWaiting.wrappingSubtract(1, ordering: .relaxed)
                return .room
            }
            let waiter = RoomWaiter(ticket: ticket, continuation: continuation)
            if first {
                var reordered = FIFO<RoomWaiter>(initialCapacity: state.roomWaiters.count + 1)
                reordered.append(waiter)
                while let next = state.roomWaiters.popFirst() { reordered.append(next) }
                state.roomWaiters = reordered
            } else {
                state.roomWaiters.append(waiter)
            }
            return nil
        }
        if let now { continuation.resume(returning: now) }
    }

    /// Wakes the first task waiting for room, if any (a waiter that does not use its wake,
    /// because it was cancelled, passes it on with this).
    package func wakeRoomWaiter() {
        let next = state.withLock { state -> UnsafeContinuation<RoomWake, Never>? in
            guard let waiter = state.roomWaiters.popFirst() else { return nil }
            roomWaiting.wrappingSubtract(1, ordering: .relaxed)
            return waiter.continuation
        }
        next?.resume(returning: .room)
    }

    /// Wakes the next task waiting for room when a credit is free: a woken waiter calls
    /// this once it has submitted (its call may not have needed its credit).
    package func passRoomOn() {
        if roomWaiting.load(ordering: .sequentiallyConsistent) > 0 && hasCredit { wakeRoomWaiter() }
    }

    /// Ends every wait for room, now and later, with `.closed`.
    package func closeRoom() {
        var waiters = state.withLock { state -> FIFO<RoomWaiter> in
            state.roomClosed = true
            let waiters = state.roomWaiters
            state.roomWaiters = FIFO(initialCapacity: 1)
            roomWaiting.wrappingSubtract(waiters.count, ordering: .relaxed)
            return waiters
        }
        while let waiter = waiters.popFirst() { waiter.continuation.resume(returning: .closed) }
    }

    /// Moves up to `maximum` completions, oldest first, to the end of `into`.
    /// Returns how many were moved.
    package func drain(into completions: inout [Completion], maximum: Int) -> Int {
        drain(maximum: maximum) { completions.append($0) }
    }

    /// Hands up to `maximum` completions, oldest first, to `body`, which runs under the
    /// queue's lock and must only store them. Returns how many it handed out.
    package func drain(maximum: Int, _ body: (Completion) -> Void) -> Int {
        let moved = state.withLock { state -> Int in
            var moved = 0
            while moved < maximum, let completion = state.pending.popFirst() {
                body(completion)
                moved += 1
            }
            if moved > 0 && state.pending.isEmpty { clearSignal() }
            return moved
        }
        if moved > 0 {
            outstanding.wrappingSubtract(moved, ordering: .sequentiallyConsistent)
            if roomWaiting.load(ordering: .sequentiallyConsistent) > 0 {
                for _ in 0..<moved { wakeRoomWaiter() }
            }
        }
        return moved
    }

    private func signal() { Housekeeping.signal(eventfd: notificationDescriptor) }

    private func clearSignal() { Housekeeping.reset(eventfd: notificationDescriptor) }
}
