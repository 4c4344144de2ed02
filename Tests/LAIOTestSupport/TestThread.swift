#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A thread of its own for a test (so that it can exit while its calls are in flight),
/// joined by whoever started it.
public final class TestThread: Sendable {
    private let thread: pthread_t

    /// Starts a thread that runs `body` and exits.
    public init(_ body: @escaping @Sendable () -> Void) {
        final class Body: Sendable {
            let run: @Sendable () -> Void
            init(_ run: @escaping @Sendable () -> Void) { self.run = run }
        }
        var thread = pthread_t()
        // Retained here, taken back once by the new thread.
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { argument in
            Unmanaged<Body>.fromOpaque(argument!).takeRetainedValue().run()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        self.thread = thread
    }

    /// Waits until the thread has exited. Call it once (or `detach`).
    public func join() { pthread_join(thread, nil) }

    /// Lets the thread go: its resources are freed when it exits. Call it once (or `join`).
    public func detach() { pthread_detach(thread) }

    /// Runs `body` on a new thread and returns what it returned once that thread has exited.
    public static func run<Value: Sendable>(_ body: @escaping @Sendable () -> Value) -> Value {
        let result = LockBox<Value?>(nil)
        TestThread { let value = body(); result.withLock { $0 = value } }.join()
        return result.withLock { $0 }!
    }
}
