import SystemPackage

// What a context can say of where its calls go: routes, route plans and counts.

/// Where a context sends operations of one kind (whether a non-blocking attempt on the
/// caller's thread comes first is `RoutePlan.inlineFirst`).
public enum Route: String, Sendable, CaseIterable {
    /// io_uring.
    case uring
    /// The eager thread pool.
    case threads
    /// The caller's thread, blocking.
    case blocking
    /// Nowhere: the backend cannot run this kind and answers ENOSYS.
    case unsupported
}

/// The route of one kind of operation: an optional inline attempt, then a destination.
public struct RoutePlan: Sendable, Equatable, CustomStringConvertible {
    /// Tried first on the caller's thread with a non-blocking form of the call.
    public var inlineFirst: Bool
    /// Where the call goes when it is not done inline.
    public var destination: Route
    /// Why the destination is not io_uring although the kernel has the opcode (io_uring
    /// refused a call of this kind that the thread pool then ran), if that happened.
    public var refusedByUring: Errno?

    public init(inlineFirst: Bool, destination: Route, refusedByUring: Errno? = nil) {
        self.inlineFirst = inlineFirst
        self.destination = destination
        self.refusedByUring = refusedByUring
    }

    public var description: String {
        (inlineFirst ? "inline-nowait, then " : "") + destination.rawValue
            + (refusedByUring.map { " (io_uring answered \($0))" } ?? "")
    }
}

/// How many operations each route finished, as counted by `auto`.
public struct RouteStatistics: Sendable, Equatable, CustomStringConvertible {
    /// Calls completed inline by their non-blocking form.
    public var inline = 0
    /// Calls tried inline that would have blocked and went on to their route.
    public var inlineMisses = 0
    /// Calls io_uring completed during submit, and calls it took to the background.
    public var uringSynchronous = 0
    public var uringBackground = 0
    /// Calls the thread pool completed within its lazy window, and calls it took to the background.
    public var threadsSynchronous = 0
    public var threadsBackground = 0
    /// Calls io_uring refused (EINVAL, EOPNOTSUPP) that were run again on the thread pool.
    public var rerunOnThreads = 0

    public init() {}

    public var description: String {
        "inline \(inline) (misses \(inlineMisses)), uring \(uringSynchronous) sync / \(uringBackground) background, "
            + "threads \(threadsSynchronous) sync / \(threadsBackground) background, rerun on threads \(rerunOnThreads)"
    }
}

