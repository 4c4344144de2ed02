import Synchronization
import SystemPackage

/// The `blocking` baseline: every call runs inline on the caller's thread and is always
/// synchronous. It shows what LAIO is for: an event loop on it stalls whenever a call blocks.
public final class BlockingBackend: Backend {
    private let closed = Atomic<Bool>(false)

    public init() {}

    /// Runs the call now. Throws `EBADF` after `shutdown()`.
    public func submit(_ operation: Operation) throws(Errno) -> Outcome {
        if closed.load(ordering: .relaxed) { throw .badFileDescriptor }
        return .completed(Result(kernelReturn: operation.run()))
    }

    /// Nothing ever goes to the background here: always `ENOENT`.
    public func cancel(_ handle: Handle) throws(Errno) { throw .noSuchFileOrDirectory }

    public func service() -> Duration? { nil }

    /// Later submits throw `EBADF`. A call running on another thread finishes first only
    /// in the sense that it belongs to that thread; nothing of it is shared with the context.
    public func shutdown() { closed.store(true, ordering: .relaxed) }
}
