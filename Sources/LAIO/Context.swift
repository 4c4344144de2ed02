#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinuxShims
import LAIOAuto
import LAIOBlocking
import LAIOCore
import LAIOThreads
import LAIOUring
import Synchronization
// The vocabulary of `import LAIO`, and nothing of the machinery below it.
@_exported import enum LAIOCore.Operation
@_exported import enum LAIOCore.OperationKind
@_exported import struct LAIOCore.SyscallArguments
@_exported import enum LAIOCore.SyscallNumber
@_exported import typealias LAIOCore.OpenHow
@_exported import struct LAIOCore.ResolveFlags
@_exported import struct LAIOCore.Handle
@_exported import enum LAIOCore.Outcome
@_exported import struct LAIOCore.Completion
@_exported import enum LAIOCore.Route
@_exported import struct LAIOCore.RoutePlan
@_exported import struct LAIOCore.RouteStatistics
@_exported import struct LAIOThreads.ThreadPoolSettings
@_exported import enum LAIOCore.ProcessLimits
@_exported import struct LAIOUring.UringSettings
@_exported import struct LAIOUring.UringSetupFlags
@_exported import struct LAIOAuto.AutoSettings
// swift-system's vocabulary for what the operations take and the errors they give.
@_exported import struct SystemPackage.Errno
@_exported import struct SystemPackage.FileDescriptor
@_exported import struct SystemPackage.FilePath
import SystemPackage

/// A LAIO context: one backend, one handle space, one poll.
///
/// ```swift
/// let laio = try Context()                       // backend from LAIO_BACKEND, default auto
/// switch try laio.submit(.pread(fd: fd, buffer: buffer, offset: 0)) {
/// case .completed(let result): use(result)      // finished without blocking
/// case .inProgress(let handle): remember(handle) // result comes from poll
/// }
/// for completion in try laio.poll(timeout: .milliseconds(10)) { ... }
/// ```
///
/// After fork() the child cannot use a context made before it: submit, poll and cancel
/// throw `EBADF`, and close and deinit leave the parent's ring and workers alone; the child
/// makes its own context.
///
/// A context may be used from several threads at once. Its `notificationDescriptor` is
/// readable while completions wait, so it plugs into an epoll or select loop.
public final class Context: Sendable {
    /// The backend this context runs (never silently another one).
    public let backendKind: BackendKind
    /// The real-time signal this context's thread pool interrupts a worker with to cancel
    /// its call (`threads`, `auto`); nil on `uring` and `blocking`, which take no signal.
    public let cancelSignal: Int32?
    let backend: any Backend
    let completions: CompletionQueue
    /// Services the backend for tasks awaiting its calls (`perform`) when nobody polls;
    /// none on `blocking`, where nothing goes to the background.
    let harvester: Harvester?
    /// `perform` calls that went to the background (`suspendedCalls`).
    let suspensions = Atomic<Int>(0)
    /// The executor, once asked for, and whether the context has closed.
    let executorSlot = Locked(ExecutorSlot())
    /// Set while the executor reaps the context (from its creation until close).
    let executorReaps = Atomic<Bool>(false)

    struct ExecutorSlot {
        var executor: ContextExecutor? = nil
        var closed = false
    }
    /// The fork generation of the process that made the context: in a forked child the
    /// context is not usable (its ring is shared with the parent, its workers did not fork).
    private let forkGeneration: UInt

    /// Creates a context on `backend` (default: `LAIO_BACKEND`, else `.auto`).
    ///
    /// Throws `ContextError.unknownBackend` for a bad `LAIO_BACKEND` word and
    /// `.setupFailed` with the errno of a failed setup (for `uring`: ENOSYS, no io_uring in
    /// this kernel; EPERM, blocked by seccomp or kernel.io_uring_disabled; ENOMEM,
    /// RLIMIT_MEMLOCK too low on kernels before 5.12).
    ///
    /// `auto` never fails for want of io_uring: when io_uring_setup answers ENOSYS, EPERM or
    /// ENOMEM it runs everything on the thread pool and says so in `details` and `routes`.
    /// Its capacity is the smaller of the pool's and the ring's.
    ///
    /// `threads` nil means the defaults: `ThreadPoolSettings()`, except that auto's pool on
    /// a machine without io_uring is `ThreadPoolSettings.withoutUring`.
    ///
    /// `cancelSignal`: the real-time signal (`SIGRTMIN` ... `SIGRTMAX`) with which the thread
    /// pool of `threads` and `auto` interrupts a worker blocked in a call being cancelled;
    /// nil: `LAIO_CANCEL_SIGNAL` (`SIGRTMIN+N`, `SIGRTMAX-N` or a number), else
    /// `defaultCancelSignal` (`SIGRTMIN+5`). The context installs an empty handler on it
    /// unless the signal already has one of the application's (not SIG_DFL or SIG_IGN): it
    /// then throws `ContextError.cancelSignalTaken` (EBUSY in C) and takes nothing. Contexts
    /// may share a signal. The handler stays after close; the application may install its
    /// own once no context that uses the signal is left. `uring` and `blocking` take no
    /// signal (the value is checked all the same); `ContextError.invalidCancelSignal` (EINVAL)
    /// for one that is not a real-time signal.
    public init(backend kind: BackendKind? = nil, threads: ThreadPoolSettings? = nil,
                uring: UringSettings = UringSettings(), auto: AutoSettings = AutoSettings(),
                cancelSignal: Int32? = nil) throws(ContextError) {
        let kind = if let kind { kind } else { try BackendKind.fromEnvironment() }
        let signal: Int32
        if let cancelSignal {
            guard Context.isRealTimeSignal(cancelSignal) else { throw .invalidCancelSignal("\(cancelSignal)") }
            signal = cancelSignal
        } else {
            signal = try Context.cancelSignalFromEnvironment()
        }
        let chosenThreads = threads
        let threads = threads ?? ThreadPoolSettings()
        let capacity: Int
        switch kind {
        case .auto:
            capacity = min(threads.capacity, uring.capacity)
        case .uring:
            capacity = uring.capacity
        case .threads:
            capacity = threads.capacity
        case .blocking:
            capacity = 1
        }
        let queue: CompletionQueue
        do throws(Errno) {
            queue = try CompletionQueue(capacity: max(capacity, 1))
            backend = switch kind {
            case .auto: try AutoBackend(settings: auto, threads: chosenThreads, uring: uring, completions: queue,
                                        cancelSignal: signal)
            case .uring: try UringBackend(settings: uring, completions: queue)
            case .threads: try ThreadPoolBackend(settings: threads, completions: queue, cancelSignal: signal)
            case .blocking: BlockingBackend()
            }
        } catch {
            // Only the pool's signal installation answers EBUSY.
            if error == .resourceBusy && (kind == .threads || kind == .auto) { throw .cancelSignalTaken(signal) }
            throw .setupFailed(kind, error)
        }
        self.backendKind = kind
        self.cancelSignal = kind == .threads || kind == .auto ? signal : nil
        self.completions = queue
        let made = backend
        self.harvester = kind == .blocking ? nil : Harvester(backend: made, completions: queue, descriptor: made.harvestDescriptor)
        self.forkGeneration = laio_shim_fork_generation()
    }

    deinit {
        if madeHere {
            // This is what ends a pool's workers when a context is dropped without close:
            // each worker holds its pool until it exits, so the pool's own deinit runs only
            // after the shutdown here has joined them (LifetimeTests).
            stop()
        } else {
            // A forked child's copy: shutting it down would wait for workers that did not
            // fork, or submit cancels into the ring the parent shares. It is left alone.
            _ = Unmanaged<AnyObject>.passRetained(backend)
        }
    }

    /// Whether this process made the context (false in a child forked after it was made).
    @inline(__always)
    var madeHere: Bool { laio_shim_fork_generation() == forkGeneration }

    /// The thread pool's workers alive now and the most at once, on `threads` and `auto`;
    /// nil on the others.
    package var poolWorkers: (live: Int, peak: Int)? {
        if let pool = backend as? ThreadPoolBackend { return pool.workerCounts }
        if let auto = backend as? AutoBackend { return auto.pool.workerCounts }
        return nil
    }

    /// How the backend was set up, in words (for logs and the demo).
    public var details: String { backend.details }

    /// Where operations of `kind` go on this context. On `auto` the route is decided at
    /// creation (and may move to the thread pool once, if io_uring refuses a call of this
    /// kind that the pool then runs); the other backends have one route for everything.
    public func route(for kind: OperationKind) -> RoutePlan { backend.route(for: kind) }

    /// Every kind's route, one line each ("pread: inline-nowait, then uring").
    public var routes: String {
        OperationKind.allCases.map { "\($0): \(route(for: $0))" }.joined(separator: "\n")
    }

    /// How many calls each route finished so far, on `auto`; nil on the other backends,
    /// which have one route and keep no counts.
    public var statistics: RouteStatistics? { backend.statistics }

    /// On `auto`, whether io_uring is in use, and if not, why (nil on the other backends).
    public var uringUnavailableReason: String? { backend.uringUnavailableReason }

    /// Runs `operation` without blocking the caller for long.
    ///
    /// Returns `.completed(result)` when the call finished without blocking (its value or
    /// its errno, exactly as the system call gives them), or `.inProgress(handle)` when it
    /// continues in the background; `poll` then reports `handle` exactly once.
    /// Throws `EAGAIN` when the context's capacity of outstanding operations is reached
    /// (poll, then retry) and `EBADF` after `close()` or in a child forked after the context
    /// was made (make a new context there).
    public func submit(_ operation: Operation) throws(Errno) -> Outcome {
        guard madeHere else { throw .badFileDescriptor }
        return try backend.submit(operation)
    }

    /// Waits up to `timeout` for background operations to finish and appends up to
    /// `maximum` completions, oldest first, to `completions`. Returns how many it appended:
    /// 0 on timeout. `timeout`: `nil` waits until at least one completion arrives, `.zero`
    /// never blocks. Throws `EINVAL` if `maximum` is not positive.
    ///
    /// Reusing one array across calls makes polling allocation-free. An infinite poll waits
    /// for a completion even when nothing is outstanding (another thread may submit); on the
    /// `blocking` backend nothing ever is, so poll it with a timeout or not at all.
    public func poll(into completions: inout [Completion], maximum: Int, timeout: Duration?) throws(Errno) -> Int {
        try poll(maximum: maximum, timeout: timeout) { completions.append($0) }
    }

    /// Like `poll(into:maximum:timeout:)`, handing each completion to `body` instead of
    /// appending it to an array (the C ABI writes them straight into the caller's records).
    /// `body` runs under the completion queue's lock: it must only store the completion.
    /// Throws `EBADF` in a child forked after the context was made.
    ///
    /// A signal handler that runs on the polling thread during the wait does not end the
    /// poll: it looks again and goes on waiting. With `interruptible` it throws `EINTR`
    /// instead (when no completion came with the signal), as poll(2) and epoll_wait(2)
    /// do whatever SA_RESTART says; `laio_poll` is interruptible.
    public func poll(maximum: Int, timeout: Duration?, interruptible: Bool = false,
                     _ body: (Completion) -> Void) throws(Errno) -> Int {
        guard madeHere else { throw .badFileDescriptor }
        guard maximum > 0 else { throw .invalidArgument }
        let deadline = timeout.map { timeout -> Int64 in
            let (sum, overflow) = monotonicNanoseconds().addingReportingOverflow(max(timeout.nanoseconds, 0))
            return overflow ? .max : sum
        }
        while true {
            let serviceInterval = backend.service()
            let moved = self.completions.drain(maximum: maximum, body)
            if moved > 0 { return moved }
            var wait: Int64? = nil
            if let deadline {
                let remaining = deadline &- monotonicNanoseconds()
                if remaining <= 0 { return 0 }
                wait = remaining
            }
            if let serviceInterval {
                wait = min(wait ?? .max, serviceInterval.nanoseconds)
            }
            // Returns early on a signal; the loop looks again, or reports it.
            if backend.waitForCompletions(in: self.completions, nanoseconds: wait) && interruptible {
                // What finished meanwhile (a ring completion not yet reaped) comes first.
                _ = backend.service()
                let moved = self.completions.drain(maximum: maximum, body)
                if moved > 0 { return moved }
                throw .interrupted
            }
        }
    }

    /// Like `poll(into:maximum:timeout:)`, returning a new array.
    public func poll(maximum: Int = 64, timeout: Duration?) throws(Errno) -> [Completion] {
        var completions: [Completion] = []
        _ = try poll(into: &completions, maximum: maximum, timeout: timeout)
        return completions
    }

    /// Asks a background operation to stop. It is still reported by `poll` exactly once:
    /// with `ECANCELED`, or with its real result if it finished first.
    ///
    /// Throws `ENOENT` when no operation with `handle` is queued or running: it was never
    /// issued by this context, completed synchronously, or has already finished (its
    /// completion is waiting for, or was returned by, poll); `EBADF` in a forked child.
    public func cancel(_ handle: Handle) throws(Errno) {
        guard madeHere else { throw .badFileDescriptor }
        try backend.cancel(handle)
    }

    /// A descriptor that is readable while completions wait for `poll`. Watch it with
    /// epoll/select/poll; do not read it (poll resets it). Valid until the context is freed.
    ///
    /// On `uring` it is an epoll instance over the ring and the completion queue, made on
    /// first use; from then on the kernel wakes it for every completion it posts, an in-kernel
    /// cost on every call, inline completions included, that a context polled only with
    /// `poll` never pays (the ring wakes its own pollers only when someone sleeps there).
    public var notificationDescriptor: Int32 { backend.notificationDescriptor ?? completions.notificationDescriptor }

    /// The number of operations that went to the background and were not yet reported
    /// (by poll, or to their task for `perform`).
    public var outstandingCount: Int { completions.outstandingCount }

    /// How many `perform` calls went to the background, and so suspended their task, since
    /// the context was made (the others returned without suspending).
    public var suspendedCalls: Int { suspensions.load(ordering: .relaxed) }

    /// Stops the context: later submits throw `EBADF`; queued operations are cancelled;
    /// blocked ones are interrupted; returns only when no call is running any more, so no
    /// buffer or descriptor of an operation is touched after it. Cancelled and finished
    /// operations can still be collected with `poll`. Idempotent; `deinit` does the same.
    /// In a child forked after the context was made it does nothing: the parent's calls are
    /// the parent's to stop.
    ///
    /// Tasks in `perform` end too: an awaited call returns its result or throws
    /// `ECANCELED`, and a task waiting for room throws `EBADF`.
    public func close() {
        if madeHere { stop() }
    }

    private func stop() {
        // Every background call is reported by the shutdown (awaited ones to their tasks),
        // then the waits for room end, and last the reapers, which nothing needs any more
        // (the executor's thread still runs the jobs of the tasks just resumed).
        backend.shutdown()
        completions.closeRoom()
        let executor = executorSlot.withLock { slot -> ContextExecutor? in
            slot.closed = true
            return slot.executor
        }
        executorReaps.store(false, ordering: .sequentiallyConsistent)
        executor?.close()
        harvester?.stop()
    }

    /// The context's executor: a `TaskExecutor` and `SerialExecutor` whose one thread runs
    /// tasks and reaps the context's completions in one wait, so that a task that awaits a
    /// call that blocks is resumed by the thread that sleeps on the call, and runs on it.
    ///
    /// ```swift
    /// try await withTaskExecutorPreference(laio.executor) {
    ///     let count = try await laio.perform(.read(fd: socket, buffer: buffer))
    /// }
    /// ```
    ///
    /// A context has one executor, made with its thread on first use; every use returns the
    /// same. It is the model of an event loop: one context for each executor thread, as
    /// laio-httpd runs one context for each of its loops; more threads mean more contexts,
    /// each with its executor, and no lock shared between them. While the executor exists
    /// it reaps the context for every awaiting task, also those on other executors (see
    /// ``ContextExecutor``). Its thread ends when the context closes, after the jobs of the
    /// tasks that the close resumed; jobs enqueued after that run on a short-lived thread.
    ///
    /// A call that does not block returns without suspending, on any executor. An actor
    /// whose `unownedExecutor` is this executor's must hold the context (or the executor):
    /// an unowned executor reference does not keep it alive.
    public var executor: ContextExecutor {
        let (executor, made) = executorSlot.withLock { slot -> (ContextExecutor, Bool) in
            if let executor = slot.executor { return (executor, false) }
            let executor = ContextExecutor(backend: backend, completions: completions,
                                           descriptor: backend.harvestDescriptor, closed: slot.closed)
            slot.executor = executor
            if !slot.closed { executorReaps.store(true, ordering: .sequentiallyConsistent) }
            return (executor, true)
        }
        if made && executor.reaps { harvester?.park() }
        return executor
    }
}

extension Context {
    /// The environment variable that chooses the cancel signal when `Context.init` is given
    /// none: `SIGRTMIN+N`, `SIGRTMAX-N` (`RTMIN+N`, `RTMAX-N` too) or a signal number.
    public static let cancelSignalEnvironmentVariable = "LAIO_CANCEL_SIGNAL"

    /// The cancel signal when neither `Context.init(cancelSignal:)` nor `LAIO_CANCEL_SIGNAL`
    /// chooses one: `SIGRTMIN+5`.
    public static var defaultCancelSignal: Int32 { laio_shim_default_cancel_signal() }

    static func isRealTimeSignal(_ signal: Int32) -> Bool {
        signal >= laio_shim_rtmin() && signal <= laio_shim_rtmax()
    }

    /// `LAIO_CANCEL_SIGNAL`'s signal, or the default when it is unset or empty.
    static func cancelSignalFromEnvironment() throws(ContextError) -> Int32 {
        guard let raw = getenv(cancelSignalEnvironmentVariable).map({ String(cString: $0) }), !raw.isEmpty else {
            return defaultCancelSignal
        }
        guard let signal = parseSignal(raw), isRealTimeSignal(signal) else { throw .invalidCancelSignal(raw) }
        return signal
    }

    /// `SIGRTMIN+N`, `SIGRTMAX-N` (with or without `SIG`), `SIGRTMIN`, `SIGRTMAX`, or a number.
    static func parseSignal(_ text: String) -> Int32? {
        if let number = Int32(text) { return number }
        let name = text.hasPrefix("SIG") ? String(text.dropFirst(3)) : text
        for (base, value, sign) in [("RTMIN", laio_shim_rtmin(), Int32(1)), ("RTMAX", laio_shim_rtmax(), Int32(-1))] {
            guard name.hasPrefix(base) else { continue }
            let rest = name.dropFirst(base.count)
            if rest.isEmpty { return value }
            guard rest.first == (sign > 0 ? "+" : "-"), let offset = Int32(rest.dropFirst()), offset >= 0 else { return nil }
            return value + sign * offset
        }
        return nil
    }

    /// `SIGRTMIN+N` or `SIGRTMAX-N`, whichever is nearer (for messages).
    static func signalName(_ signal: Int32) -> String {
        let fromMin = signal - laio_shim_rtmin(), fromMax = laio_shim_rtmax() - signal
        return fromMin <= fromMax ? "SIGRTMIN+\(fromMin)" : "SIGRTMAX-\(fromMax)"
    }
}
