/// A value handed to other tasks or threads whose safety its user ensures: a buffer that the
/// awaited call alone uses until `perform` returns, an operation that one thread at a time
/// submits.
public struct UnsafeSendable<Value>: @unchecked Sendable {
    // @unchecked: every user keeps the value to one task or thread at a time (the awaited
    // call owns a buffer until perform returns, and the test reads it only after).
    public let value: Value
    public init(_ value: Value) { self.value = value }
}
