import SystemPackage
/// The identity of one operation that went to the background.
///
/// Unique among the operations of a context that are outstanding (submitted and not yet
/// reported by `poll`); never zero, so the C ABI can use it as a non-NULL `void *`.
public struct Handle: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "Handle(\(rawValue))" }
}

/// What `submit` gives back: the result now, or a handle whose result `poll` reports later.
public enum Outcome: Sendable, Equatable {
    /// The call finished without blocking; this is its result (a value, or its errno).
    case completed(Result<Int, Errno>)
    /// The call went to the background; `poll` will report this handle exactly once.
    case inProgress(Handle)
}

/// One finished background operation, as `poll` reports it.
public struct Completion: Sendable, Equatable {
    /// The handle `submit` returned for the operation.
    public var handle: Handle
    /// The call's result (a value, or its errno; `ECANCELED` if it was cancelled).
    public var result: Result<Int, Errno>

    public init(handle: Handle, result: Result<Int, Errno>) {
        self.handle = handle
        self.result = result
    }

    /// A completion from the kernel's raw answer (value, or -errno).
    @inlinable
    public init(handle: Handle, kernelReturn: Int) {
        self.init(handle: handle, result: Result(kernelReturn: kernelReturn))
    }
}
