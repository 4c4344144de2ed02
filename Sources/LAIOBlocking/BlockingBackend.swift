import LAIOCore
import Synchronization
import SystemPackage

/// The `blocking` baseline: every call runs inline on the caller's thread and is always
/// synchronous. It shows what LAIO is for: an event loop on it stalls whenever a call blocks.
package final class BlockingBackend: Backend {
    private let closed = Atomic<Bool>(false)

    package init() {}

    /// Runs the call now (nothing to claim: it never goes to the background). Throws
    /// `EBADF` after `shutdown()`.
    package func submit(_ operation: Operation, claimed: Bool) throws(Errno) -> Outcome {
        if closed.load(ordering: .relaxed) { throw .badFileDescriptor }
        return .completed(Result(kernelReturn: operation.run()))
    }

    /// Nothing ever goes to the background here: always `ENOENT`.
    package func cancel(_ handle: Handle) throws(Errno) { throw .noSuchFileOrDirectory }

    package func service() -> Duration? { nil }

    /// Later submits throw `EBADF`. A call running on another thread finishes first only
    /// in the sense that it belongs to that thread; nothing of it is shared with the context.
    package func shutdown() { closed.store(true, ordering: .relaxed) }

    package var details: String { "blocking: every call inline" }

    package func route(for kind: OperationKind) -> RoutePlan { RoutePlan(inlineFirst: false, destination: .blocking) }
}
