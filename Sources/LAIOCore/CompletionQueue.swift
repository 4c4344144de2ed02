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
/// Memory is bounded by credits: a backend takes one (`reserve`) before an operation may go
/// to the background and the credit returns when `poll` hands the completion out, so the
/// queue never holds more than `capacity` completions.
package final class CompletionQueue: Sendable {
    private struct State {
        var pending = Ring<Completion>(initialCapacity: 64)
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
        outstanding.wrappingSubtract(1, ordering: .relaxed)
    }

    /// Adds a completion; its credit returns when poll hands it out.
    package func push(_ completion: Completion) {
        state.withLock { state in
            state.pending.append(completion)
            if state.pending.count == 1 { signal() }
        }
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
        if moved > 0 { outstanding.wrappingSubtract(moved, ordering: .relaxed) }
        return moved
    }

    private func signal() { Housekeeping.signal(eventfd: notificationDescriptor) }

    private func clearSignal() { Housekeeping.reset(eventfd: notificationDescriptor) }
}
