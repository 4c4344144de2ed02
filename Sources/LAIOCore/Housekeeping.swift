#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims

/// The library's own housekeeping system calls (waking and resetting eventfds, a worker's
/// semaphore, sleeping until a descriptor is readable), in one place with one EINTR policy:
/// - a call that only moves the library's own state is retried when a signal handler
///   interrupts it, since the signal says nothing about it;
/// - a wait on behalf of a caller of `poll` returns the interruption instead, so that poll
///   can look again or report it (`laio_poll` reports EINTR).
/// The calls the library runs for its users (`Operation.run()`) are not housekeeping: their
/// EINTR is their result.
package enum Housekeeping {
    /// Adds one to eventfd `fd`, making it readable. A full counter (EAGAIN on a
    /// non-blocking eventfd) is readable already, so that answer is as good as success.
    @inline(__always)
    package static func signal(eventfd fd: Int32) {
        var one: UInt64 = 1
        while write(fd, &one, 8) < 0 && errno == EINTR {}
    }

    /// Resets non-blocking eventfd `fd` to zero; an already-zero counter (EAGAIN) is fine.
    @inline(__always)
    package static func reset(eventfd fd: Int32) {
        var value: UInt64 = 0
        while read(fd, &value, 8) < 0 && errno == EINTR {}
    }

    /// Waits until `semaphore` can be taken; a signal does not end the wait.
    @inline(__always)
    package static func wait(_ semaphore: UnsafeMutablePointer<sem_t>) {
        while sem_wait(semaphore) != 0 && errno == EINTR {}
    }

    /// Waits until `semaphore` can be taken or `nanoseconds` pass on the monotonic clock;
    /// a signal does not end the wait. Returns true when the semaphore was taken.
    package static func wait(_ semaphore: UnsafeMutablePointer<sem_t>, nanoseconds: Int64) -> Bool {
        let (sum, overflow) = monotonicNanoseconds().addingReportingOverflow(max(nanoseconds, 0))
        let deadline = overflow ? Int64.max : sum
        while true {
            let rc = laio_shim_semaphore_wait_until(semaphore, deadline)
            if rc != EINTR { return rc == 0 }
        }
    }

    /// Sleeps until `fd` is readable or `nanoseconds` pass (nil: no limit; negative: zero).
    /// Returns true when a signal handler ran on this thread meanwhile (EINTR): the wait
    /// ended early, and it is the caller's to report or to wait again.
    @inline(__always)
    package static func waitReadable(_ fd: Int32, nanoseconds: Int64?) -> Bool {
        laio_shim_wait_readable(fd, nanoseconds.map { max($0, 0) } ?? -1) == -EINTR
    }

    /// Like `waitReadable(_:nanoseconds:)`, until `a` or `b` is readable.
    @inline(__always)
    package static func waitReadable(_ a: Int32, _ b: Int32, nanoseconds: Int64?) -> Bool {
        laio_shim_wait_readable2(a, b, nanoseconds.map { max($0, 0) } ?? -1) == -EINTR
    }
}
