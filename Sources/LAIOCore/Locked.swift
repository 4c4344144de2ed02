#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// A value guarded by a `pthread_mutex_t`.
///
/// Used instead of `Synchronization.Mutex` because ThreadSanitizer cannot see the
/// contended path of `Mutex` on Linux (its futex wait lives in the uninstrumented standard
/// library) and reports false races; it intercepts `pthread_mutex_*`, so races it reports
/// here are real. The cost of an uncontended lock is the same.
package final class Locked<State>: @unchecked Sendable {
    // @unchecked: `state` is read and written only between pthread_mutex_lock and
    // pthread_mutex_unlock of `mutex`, so no two threads touch it at once.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Out of line, so that access needs no dynamic exclusivity check: the lock is the check.
    private let state: UnsafeMutablePointer<State>

    package init(_ state: State) {
        self.state = .allocate(capacity: 1)
        self.state.initialize(to: state)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        // Safe: no thread can hold the lock, or a pointer to the state, once the last
        // reference is gone.
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Runs `body` with exclusive access to the state.
    @inlinable
    package func withLock<Result, Failure: Error>(_ body: (inout State) throws(Failure) -> Result) throws(Failure) -> Result {
        lock()
        defer { unlock() }
        return try body(&stateForLockHolder)
    }

    @usableFromInline
    var stateForLockHolder: State {
        _read { yield state.pointee }
        _modify { yield &state.pointee }
    }

    @usableFromInline
    func lock() { pthread_mutex_lock(mutex) }

    @usableFromInline
    func unlock() { pthread_mutex_unlock(mutex) }
}
