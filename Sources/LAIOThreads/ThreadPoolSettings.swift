#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LAIOCore

/// Settings of the `threads` backend, and of the pool behind `auto`.
///
/// The pool keeps a continuation for every call that blocks: a call handed over while no
/// worker is free gets a new worker at once (started by the submitter, or by a worker that
/// is starting already: new workers start more while calls wait), up to `maximumWorkers`;
/// beyond that bound calls wait their turn in order (none fails). Workers beyond `minimumWorkers` exit after
/// `keepAlive` without work. A worker has a small stack (`workerStackSize`): it runs one
/// system call at a time.
public struct ThreadPoolSettings: Sendable, Equatable {
    /// Workers started with the context and kept while idle. At least 1.
    public var minimumWorkers: Int
    /// The most workers at once. Default: `defaultMaximumWorkers`, from the process's limits.
    public var maximumWorkers: Int
    /// How long a worker beyond `minimumWorkers` waits for new work before it exits.
    public var keepAlive: Duration
    /// How long `submit` waits for the worker before answering `.inProgress`. A call that
    /// finishes within the window is returned synchronously, as if it had not blocked.
    /// Zero never waits: a call is then synchronous only if its worker finished it before
    /// `submit` looked.
    public var lazyWindow: Duration
    /// The most operations that may be outstanding (queued, running, or completed and not
    /// yet returned by poll); past it `submit` throws `EAGAIN`.
    public var capacity: Int
    /// How long an idle worker keeps looking for new work before it sleeps. Within it a
    /// hand-off costs a cache-line transfer instead of a futex wake-up and a scheduler trip.
    public var idleSpin: Duration

    /// The largest `maximumWorkers` and `capacity` accepted; beyond them creation fails with
    /// `EINVAL` instead of exhausting threads or memory.
    public static let workerLimit = 16_384
    public static let maximumCapacity = 1 << 20

    /// The default bound on workers: `ProcessLimits.threadBound` (4,096, or less where the
    /// process's limits would run out first).
    public static let defaultMaximumWorkers = ProcessLimits.threadBound

    /// The stack of a worker thread: a worker runs one system call and the pool's loop.
    /// Only the pages it touches are resident: a blocked call costs about 8 KiB of resident
    /// memory (`laio-demo --blocked-calls 2000`).
    public static let workerStackSize = 128 * 1024

    /// The pool of the `auto` strategy when io_uring cannot be used: it then carries every
    /// call that blocks (cached reads are answered inline before it), so idle workers park
    /// at once (spinning ones would take CPU from the ones doing I/O) and a few are kept.
    public static let withoutUring = ThreadPoolSettings(minimumWorkers: 4, idleSpin: .zero)

    /// The pool of the `auto` strategy beside io_uring: it carries only what io_uring does
    /// not run (sendfile, raw system calls), so it keeps two workers.
    public static let besideUring = ThreadPoolSettings(minimumWorkers: 2)

    /// Defaults measured on a 2-core machine with `scripts/demo --tune` (the pool sweep).
    public init(minimumWorkers: Int = 16, maximumWorkers: Int = ThreadPoolSettings.defaultMaximumWorkers,
                keepAlive: Duration = .seconds(10), lazyWindow: Duration = .microseconds(10),
                capacity: Int = 16_384, idleSpin: Duration = .microseconds(20)) {
        self.minimumWorkers = minimumWorkers
        self.maximumWorkers = maximumWorkers
        self.keepAlive = keepAlive
        self.lazyWindow = lazyWindow
        self.capacity = capacity
        self.idleSpin = idleSpin
    }

    /// A pool of exactly `workers` threads, started with the context and never more.
    public init(workers: Int, lazyWindow: Duration = .microseconds(10), capacity: Int = 16_384,
                idleSpin: Duration = .microseconds(20)) {
        self.init(minimumWorkers: workers, maximumWorkers: workers, lazyWindow: lazyWindow,
                  capacity: capacity, idleSpin: idleSpin)
    }

    /// Whether the settings are in range (see each property).
    var isValid: Bool {
        minimumWorkers > 0 && minimumWorkers <= maximumWorkers && maximumWorkers <= Self.workerLimit
            && capacity > 0 && capacity <= Self.maximumCapacity
            && lazyWindow >= .zero && idleSpin >= .zero && keepAlive >= .zero
    }
}
