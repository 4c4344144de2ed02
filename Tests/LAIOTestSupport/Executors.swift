#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// A task executor with one thread of its own that counts the jobs it is given: a task
/// that runs on it and never suspends adds no job after its first.
public final class CountingExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `jobs` and `stopping` are touched only under `mutex`; `count` is atomic;
    // the thread is joined in `shutdown` before the executor can go.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [UnownedJob] = []
    private var stopping = false
    private var thread = pthread_t()
    private let count = Atomic<Int>(0)

    public init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        // Retained until the thread ends (it holds the executor while it runs).
        let me = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { argument in
            let executor = Unmanaged<CountingExecutor>.fromOpaque(argument!).takeRetainedValue()
            executor.loop()
            return nil
        }, me)
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    deinit {
        // The thread held a reference until it ended: nothing uses the lock any more.
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// The jobs enqueued so far.
    public var jobsEnqueued: Int { count.load(ordering: .relaxed) }

    public func enqueue(_ job: consuming ExecutorJob) {
        count.add(1, ordering: .relaxed)
        let unowned = UnownedJob(job)
        pthread_mutex_lock(mutex)
        jobs.append(unowned)
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Ends the thread once the jobs enqueued so far have run.
    public func shutdown() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
        pthread_join(thread, nil)
    }

    private func loop() {
        while true {
            pthread_mutex_lock(mutex)
            while jobs.isEmpty && !stopping { pthread_cond_wait(condition, mutex) }
            if jobs.isEmpty {
                pthread_mutex_unlock(mutex)
                return
            }
            let job = jobs.removeFirst()
            pthread_mutex_unlock(mutex)
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// A task executor that runs every job on a new thread, which exits when the job is done:
/// the threads that submit a task's calls come and go.
public final class ThreadPerJobExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: only the atomic counter is mutable.
    private let count = Atomic<Int>(0)

    public init() {}

    /// The jobs (and threads) so far.
    public var jobsEnqueued: Int { count.load(ordering: .relaxed) }

    public func enqueue(_ job: consuming ExecutorJob) {
        count.add(1, ordering: .relaxed)
        let unowned = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        TestThread { unowned.runSynchronously(on: executor) }.detach()
    }
}

/// Ends the test process with `message` if `body` has not returned after `limit`: a hang
/// becomes a failure with a reason instead of a run that never ends. The limit is far
/// above what the work needs on any machine (it is not a speed check).
public func failingIfHung<T>(after limit: Duration = .seconds(600), _ message: String,
                             _ body: () async throws -> T) async rethrows -> T {
    let watcher = Watchdog(limit: limit, message: message)
    defer { watcher.finish() }
    return try await body()
}

/// The thread behind `failingIfHung`.
final class Watchdog: @unchecked Sendable {
    // @unchecked: `finished` is touched only under `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var finished = false
    private var thread: TestThread? = nil

    init(limit: Duration, message: String) {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        let seconds = limit.components.seconds
        thread = TestThread { [self] in
            var deadline = timespec()
            clock_gettime(CLOCK_REALTIME, &deadline)
            deadline.tv_sec += Int(seconds)
            pthread_mutex_lock(mutex)
            while !finished {
                if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT && !finished {
                    let line = "hung for \(seconds) s: \(message)\n"
                    _ = line.withCString { write(2, $0, strlen($0)) }
                    abort()
                }
            }
            pthread_mutex_unlock(mutex)
        }
    }

    /// Stops the watch; call it once. The lock is freed once its thread has exited.
    func finish() {
        pthread_mutex_lock(mutex)
        finished = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
        thread?.join()
        thread = nil
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }
}
