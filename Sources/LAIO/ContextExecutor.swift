#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import LAIOCore
import Synchronization

/// A task executor and serial executor with one thread of its own that runs tasks and
/// reaps its context's completions in the same loop: ``Context/executor``.
///
/// ```swift
/// let laio = try Context()
/// try await withTaskExecutorPreference(laio.executor) {
///     let count = try await laio.read(fd, into: buffer)   // resumed on laio's thread
/// }
/// actor Connection {
///     let laio: Context
///     nonisolated var unownedExecutor: UnownedSerialExecutor { laio.executor.asUnownedSerialExecutor() }
/// }
/// ```
///
/// The thread runs the jobs enqueued on it, in order of arrival, and between two jobs
/// reaps what has finished in the context (a look at the completion ring under an
/// uncontended lock: no system call when nothing finished). When it has no job it sleeps in
/// one wait on the context itself (the ring's descriptor, where the backend has a ring)
/// and on the executor's own eventfd, which an `enqueue` from another thread signals only
/// while the thread sleeps. A completed call's task is then resumed on the spot: its next
/// job lands in this queue, on this thread, without another wake-up. A call that finishes
/// on a pool worker resumes its task from the worker, which wakes the thread once.
///
/// While the executor exists it is its context's reaper: the harvester thread that
/// otherwise reaps the ring for awaiting tasks stays parked, and the executor's thread
/// also reaps the calls of tasks that await on other executors (the global one, say),
/// whose continuations it resumes onto their own executors, each exactly once. A job that
/// blocks its thread therefore delays the ring's completions for every task of the
/// context; keep jobs short, as on any event loop.
///
/// When the context closes, every awaited call is reported to its task (its result or
/// `ECANCELED`), the thread runs the jobs that were queued, then stops reaping and ends.
/// Jobs enqueued after that (a task that awaited something else meanwhile, an actor that is
/// still used) still run, in order and one at a time, on a short-lived thread that the
/// executor starts for them and that ends when none is left; they never hang. Only if the
/// system refuses a new thread (no memory or threads left) does the executor stop the
/// process, with a message saying so; so does a job enqueued in a child forked after the
/// executor was made (its thread did not fork: the child makes a context of its own).
public final class ContextExecutor: TaskExecutor, SerialExecutor, @unchecked Sendable {
    // @unchecked: `backend`, `completions`, `descriptor`, `wake`, `serial` and
    // `forkGeneration` are immutable; the job queue and the thread's state are touched only
    // under `state`'s lock; `runner`, `reaping` and `enqueued` are atomic.
    private let backend: any Backend
    private let completions: CompletionQueue
    /// The backend's ring descriptor (readable while completions wait in it); nil for
    /// backends without one.
    private let descriptor: Int32?
    /// The eventfd an enqueue from another thread signals while the thread sleeps.
    private let wake: Int32
    /// The thread that runs the jobs now (`pthread_t` as an integer; 0 while none does).
    private let runner = Atomic<UInt>(0)
    /// Whether the thread reaps the context: from creation until the context closes.
    private let reaping = Atomic<Bool>(true)
    /// Jobs enqueued so far (for tests: a task resumed once adds one job).
    private let enqueued = Atomic<Int>(0)
    private let state = Locked(State())
    /// The executor's serial face, for actors (`asUnownedSerialExecutor`).
    private let serial: ContextSerialExecutor
    /// The fork generation of the process that made the executor (and its thread).
    private let forkGeneration = laio_shim_fork_generation()

    /// A job, and whether an actor whose executor this is enqueued it (it then runs
    /// isolated to `serial`), or a task that prefers this executor (it runs on it as a
    /// task executor, nonisolated: a hop into a nonisolated function costs no new job).
    private struct Entry {
        var job: UnownedJob
        var isolated: Bool
    }

    private struct State {
        var jobs = FIFO<Entry>(initialCapacity: 64)
        /// A thread runs the queue (before close: always).
        var running = false
        /// The thread sleeps, or is about to: an enqueue signals `wake` (once).
        var sleeping = false
        /// The context has closed: the thread ends when the queue is empty.
        var closed = false
    }

    init(backend: any Backend, completions: CompletionQueue, descriptor: Int32?, closed: Bool) {
        self.backend = backend
        self.completions = completions
        self.descriptor = descriptor
        self.serial = ContextSerialExecutor()
        let wake = laio_shim_eventfd()
        precondition(wake >= 0, "Context.executor: no eventfd for its queue (\(Errno(rawValue: -wake)))")
        self.wake = wake
        serial.owner = self
        if closed {
            reaping.store(false, ordering: .relaxed)
            state.withLock { $0.closed = true }
        } else {
            state.withLock { state in
                state.running = true
                startThread()
            }
        }
    }

    deinit {
        // Every thread held the executor until it ended: nobody signals the eventfd any more.
        _ = Glibc.close(wake)
    }

    // MARK: Executor

    public func enqueue(_ job: consuming ExecutorJob) {
        enqueue(UnownedJob(job), isolated: false)
    }

    fileprivate func enqueue(_ job: UnownedJob, isolated: Bool) {
        // Its thread did not fork: a job queued in a child would never run.
        if laio_shim_fork_generation() != forkGeneration {
            fatalError("Context.executor: used in a child forked after it was made; make a new context in the child")
        }
        enqueued.add(1, ordering: .relaxed)
        let signal = state.withLock { state -> Bool in
            state.jobs.append(Entry(job: job, isolated: isolated))
            if !state.running {
                // After close, when the thread has ended: a new one runs what comes.
                state.running = true
                startThread()
                return false
            }
            guard state.sleeping else { return false }
            state.sleeping = false
            return true
        }
        if signal { Housekeeping.signal(eventfd: wake) }
    }

    /// The serial executor of actors that live on this executor's thread (their
    /// `unownedExecutor`). It is a distinct identity from the task executor, so that a task
    /// that merely prefers this executor does not run isolated to those actors.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: serial)
    }

    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }

    /// The jobs enqueued so far.
    package var jobsEnqueued: Int { enqueued.load(ordering: .relaxed) }

    /// Whether the caller runs on the executor's thread.
    public var isCurrentThread: Bool {
        let current = runner.load(ordering: .acquiring)
        return current != 0 && current == UInt(pthread_self())
    }

    public func checkIsolated() {
        precondition(isCurrentThread, "not on the thread of this context's executor")
    }

    // MARK: The context's side

    /// Whether the executor reaps the context (the harvester then need not).
    var reaps: Bool { reaping.load(ordering: .sequentiallyConsistent) }

    /// A call of the context's was cancelled: its thread runs the backend's service soon,
    /// and as often as the service asks, until the cancel needs no more asking.
    /// Signals always, not only while the thread sleeps: a cancel that comes between the
    /// loop's service and its sleep would otherwise wait for a wake-up that never comes.
    func cancelRequested() {
        state.withLock { $0.sleeping = false }
        Housekeeping.signal(eventfd: wake)
    }

    /// The context has closed (its backend is shut down, so every awaited call has been
    /// reported): the thread stops reaping and ends once its queue is empty.
    func close() {
        reaping.store(false, ordering: .sequentiallyConsistent)
        let signal = state.withLock { state -> Bool in
            state.closed = true
            guard state.sleeping else { return false }
            state.sleeping = false
            return true
        }
        if signal { Housekeeping.signal(eventfd: wake) }
    }

    // MARK: The thread

    /// Starts a thread that runs the queue (under the lock, with `running` set).
    private func startThread() {
        var thread = pthread_t()
        // Retained until the thread ends: it uses the executor until then.
        let me = Unmanaged.passRetained(self).toOpaque()
        let rc = laio_shim_start_thread(&thread, { argument in
            Unmanaged<ContextExecutor>.fromOpaque(argument!).takeRetainedValue().run()
            return nil
        }, me, 8 << 20)
        guard rc == 0 else {
            Unmanaged<ContextExecutor>.fromOpaque(me).release()
            fatalError("Context.executor: cannot start its thread (\(Errno(rawValue: rc))); its jobs could never run")
        }
        _ = pthread_detach(thread)
    }

    private enum Next {
        case run(Entry)
        case sleep
        case end
    }

    private func run() {
        state.withLock { _ in runner.store(UInt(pthread_self()), ordering: .releasing) }
        let isolatedTo = asUnownedSerialExecutor()
        let task = asUnownedTaskExecutor()
        while true {
            // Between jobs: what finished resumes its task now (onto this queue, for tasks
            // of this executor). No system call when nothing finished.
            let interval = reaping.load(ordering: .relaxed) ? backend.service() : nil
            let next = state.withLock { state -> Next in
                if let entry = state.jobs.popFirst() { return .run(entry) }
                if state.closed {
                    // Under the lock: a thread that an enqueue starts next sets its own.
                    runner.store(0, ordering: .releasing)
                    state.running = false
                    return .end
                }
                state.sleeping = true
                return .sleep
            }
            switch next {
            case let .run(entry):
                if entry.isolated {
                    entry.job.runSynchronously(on: isolatedTo)
                } else {
                    entry.job.runSynchronously(on: task)
                }
            case .sleep:
                // One wait on the context and the queue; the service interval bounds it
                // while a cancel needs asking again.
                if let descriptor, reaping.load(ordering: .relaxed) {
                    _ = Housekeeping.waitReadable(wake, descriptor, nanoseconds: interval?.nanoseconds)
                } else {
                    _ = Housekeeping.waitReadable(wake, nanoseconds: interval?.nanoseconds)
                }
                Housekeeping.reset(eventfd: wake)
                state.withLock { $0.sleeping = false }
            case .end:
                return
            }
        }
    }
}

/// The serial face of a `ContextExecutor`: actors whose `unownedExecutor` it is enqueue
/// their jobs here, and they run on the executor's thread, isolated to this executor.
final class ContextSerialExecutor: SerialExecutor, @unchecked Sendable {
    // @unchecked: `owner` is set once, by the owner's init, before this object is shared.
    /// Unowned: the owner holds this object. An actor on it must keep the context (or its
    /// executor) alive, as an actor keeps whatever its `unownedExecutor` names; after close
    /// the executor lives only as long as the context or its thread holds it.
    unowned(unsafe) var owner: ContextExecutor? = nil

    func enqueue(_ job: consuming ExecutorJob) {
        owner!.enqueue(UnownedJob(job), isolated: true)
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    func checkIsolated() {
        precondition(owner!.isCurrentThread, "not on the thread of this context's executor")
    }
}
