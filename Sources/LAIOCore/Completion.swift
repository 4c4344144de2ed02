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

/// The layout of a handle's bits, the one place it is written down. Every backend makes its
/// handles here and reads them back here:
/// - bits 0–31: the slot index plus one, so no handle is zero (the C ABI's "no handle");
/// - bits 32–62: the slot's generation (31 bits), so a reused slot gives a new handle;
/// - bit 63: the route tag, which a strategy sets on the handles of one of the two backends
///   it shares a completion queue with (`auto`: the pool's), so one handle space covers both.
extension Handle {
    package static let routeTag: UInt64 = 1 << 63

    @inline(__always)
    package init(slot: Int, generation: UInt32, routeTagged: Bool = false) {
        self.init(rawValue: (routeTagged ? Handle.routeTag : 0) | UInt64(generation & 0x7fff_ffff) << 32
            | UInt64(truncatingIfNeeded: slot + 1))
    }

    /// The slot index the handle names; -1 when its low half is zero (no slot).
    @inline(__always)
    package var slot: Int { Int(truncatingIfNeeded: rawValue & 0xffff_ffff) - 1 }

    /// Whether the route tag is set.
    @inline(__always)
    package var isRouteTagged: Bool { rawValue & Handle.routeTag != 0 }
}
