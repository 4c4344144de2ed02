import Synchronization

/// A value shared by the threads of a test, guarded by a `Mutex`.
///
/// (The library's own lock is package machinery; tests reach only what `import LAIO` shows.)
public final class LockBox<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    /// Released at the end of each critical section and acquired at the start of the next.
    /// ThreadSanitizer does not see a contended `Mutex` change hands (the wait and the
    /// hand-over are a futex in the uninstrumented standard library) and would report the
    /// value's accesses as races; this atomic shows it the order the lock gives.
    private let handOver = Atomic<Int>(0)

    public init(_ value: Value) { mutex = Mutex(value) }

    /// Runs `body` with exclusive access to the value.
    public func withLock<Result: Sendable, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try mutex.withLock { (value) throws(Failure) -> Result in
            _ = handOver.load(ordering: .acquiring)
            defer { handOver.add(1, ordering: .releasing) }
            return try body(&value)
        }
    }
}
