import CLinuxShims
import SystemPackage

/// What every backend does. The facade (`LAIO.Context`) is the only caller; it never asks
/// which backend it talks to.
///
/// A backend is created with the context's `CompletionQueue`, pushes every background
/// completion into it exactly once, and takes a completion credit from it (`reserve`)
/// before an operation may go to the background.
package protocol Backend: AnyObject, Sendable {
    /// Issues `operation`. Returns `.completed` if the call finished without blocking, or
    /// `.inProgress(handle)` if it continues in the background.
    /// Throws `EAGAIN` when the backend's bounds are reached and `EBADF` once shut down.
    ///
    /// With `claimed` a task awaits the call: if it goes to the background, the backend
    /// claims its handle in the completion queue (`CompletionQueue.claim`) before the call
    /// can finish, and unclaims it if it completes synchronously after all.
    func submit(_ operation: Operation, claimed: Bool) throws(Errno) -> Outcome

    /// Asks the background operation `handle` to stop. It is still reported by `poll`
    /// exactly once: with `ECANCELED`, or with its real result if it finished first.
    /// Throws `ENOENT` if no operation with that handle is queued or running.
    func cancel(_ handle: Handle) throws(Errno)

    /// Housekeeping that `poll` runs before it sleeps: move finished work into the
    /// completion queue, re-assert pending cancellations. Returns how long `poll` may sleep
    /// before calling it again; `nil` means as long as it likes.
    func service() -> Duration?

    /// Stops accepting work, cancels what is queued, interrupts what blocks, and returns
    /// only when no call is running, so no buffer or descriptor is touched after it.
    /// Cancelled operations are still pushed to the completion queue. Idempotent.
    func shutdown()

    /// A descriptor that is readable while completions wait, when the backend has sources
    /// of completions besides the completion queue; `nil` means the queue's eventfd.
    var notificationDescriptor: Int32? { get }

    /// Sleeps until completions may be waiting (in `queue` or in the backend) or
    /// `nanoseconds` pass (`nil`: no limit). May return early; poll looks again.
    /// Returns true when a signal handler ran on this thread during the wait (EINTR).
    @discardableResult
    func waitForCompletions(in queue: CompletionQueue, nanoseconds: Int64?) -> Bool

    /// A descriptor that is readable while finished calls wait inside the backend for
    /// somebody to move them to the completion queue (`service`): the ring, for backends
    /// with one. For such a backend a claimed call's task is resumed only when somebody
    /// services it, so the context runs a thread that does while claimed calls are in the
    /// ring (`Context.perform`). `nil`: every completion is pushed by whoever finishes it.
    var harvestDescriptor: Int32? { get }

    /// How the backend was set up, in words (for logs and the demo).
    var details: String { get }

    /// Where operations of `kind` go on this backend.
    func route(for kind: OperationKind) -> RoutePlan

    /// How many calls each route finished so far; nil for backends with one route, which
    /// keep no counts.
    var statistics: RouteStatistics? { get }

    /// Why io_uring is not in use, for a backend that would use it and does not; nil for
    /// the others.
    var uringUnavailableReason: String? { get }
}

extension Backend {
    /// `submit(_:claimed:)` for a call nobody awaits: its completion goes to poll.
    @inline(__always)
    package func submit(_ operation: Operation) throws(Errno) -> Outcome {
        try submit(operation, claimed: false)
    }

    package var harvestDescriptor: Int32? { nil }
    package var notificationDescriptor: Int32? { nil }
    package var statistics: RouteStatistics? { nil }
    package var uringUnavailableReason: String? { nil }

    /// Backends whose every completion goes through the queue sleep on its eventfd.
    @discardableResult
    package func waitForCompletions(in queue: CompletionQueue, nanoseconds: Int64?) -> Bool {
        Housekeeping.waitReadable(queue.notificationDescriptor, nanoseconds: nanoseconds)
    }
}
