#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLiburing
import LAIOCore

/// Settings of the `uring` backend.
public struct UringSettings: Sendable, Equatable {
    /// Submission-queue entries. Each submit hands its entry to the kernel at once, so this
    /// only bounds how many entries can wait when the kernel pushes back (EBUSY).
    public var entries: Int
    /// Completion-queue entries; 0 means four times `entries`. Completions beyond it wait in
    /// the kernel's overflow list (IORING_FEAT_NODROP), none is lost.
    public var completionEntries: Int
    /// The most operations that may be outstanding (in the kernel, or finished and not yet
    /// returned by poll); past it `submit` throws `EAGAIN`. On a kernel without
    /// IORING_FEAT_NODROP it is lowered to the completion-queue size, so that the
    /// completion ring can never overflow. At most `maximumCapacity`.
    public var capacity: Int
    /// The largest `capacity` accepted (about 400 MB of address space for the slots, used
    /// only as far as operations really are outstanding).
    public static let maximumCapacity = 1 << 20
    /// Setup flag sets to try, best first; the first one the kernel accepts is used (see
    /// `UringBackend.setupFlags`). IORING_SETUP_CQSIZE and CLAMP are added to each.
    /// The flags of `UringSetupFlags.refused` (SINGLE_ISSUER, DEFER_TASKRUN, SQPOLL, IOPOLL,
    /// SQE128, CQE32) are refused with `EINVAL` (see there and `UringSetupFlags.defaultLadder`).
    public var flagLadder: [UringSetupFlags]
    /// The most io-wq workers the kernel runs for this ring's blocking file work (reads and
    /// writes of files without a non-blocking form, opens, stats: io-wq's "bounded" class),
    /// set with IORING_REGISTER_IOWQ_MAX_WORKERS for every thread that submits. nil keeps
    /// the kernel's default, min(`entries`, 4 × CPUs). Calls that wait on slow storage (a
    /// network file system, FUSE) each hold a worker, so the bound is how many of them wait
    /// at once. Kernels before 5.15 cannot set it; `details` then says so. 1...16,384.
    ///
    /// The default, `defaultFileWorkers`, is the thread pool's bound
    /// (`ProcessLimits.threadBound`): io-wq starts a worker only when a call would wait and
    /// lets an idle one go after a few seconds, so the bound costs nothing while storage is
    /// fast, and on slow storage each waiting call gets its own worker.
    public var maximumFileWorkers: Int?
    /// `ProcessLimits.threadBound`.
    public static let defaultFileWorkers = ProcessLimits.threadBound
    /// The largest `maximumFileWorkers` accepted.
    public static let fileWorkerLimit = 16_384

    /// For tests: fewer slots than `capacity`, as on a kernel without IORING_FEAT_NODROP
    /// whose completion ring is smaller than the context's queue (submit then answers
    /// EAGAIN while the queue still has credits). Not part of the API; nil outside tests.
    package var slotLimitForTesting: Int? = nil

    public init(entries: Int = 256, completionEntries: Int = 0, capacity: Int = 16_384,
                flagLadder: [UringSetupFlags] = UringSetupFlags.defaultLadder,
                maximumFileWorkers: Int? = UringSettings.defaultFileWorkers) {
        self.entries = entries
        self.completionEntries = completionEntries
        self.capacity = capacity
        self.flagLadder = flagLadder
        self.maximumFileWorkers = maximumFileWorkers
    }
}

/// io_uring setup flags (IORING_SETUP_*), by name.
public struct UringSetupFlags: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let cqSize = UringSetupFlags(rawValue: IORING_SETUP_CQSIZE)
    public static let clamp = UringSetupFlags(rawValue: IORING_SETUP_CLAMP)
    public static let submitAll = UringSetupFlags(rawValue: IORING_SETUP_SUBMIT_ALL)
    public static let coopTaskrun = UringSetupFlags(rawValue: IORING_SETUP_COOP_TASKRUN)
    public static let taskrunFlag = UringSetupFlags(rawValue: IORING_SETUP_TASKRUN_FLAG)
    public static let singleIssuer = UringSetupFlags(rawValue: IORING_SETUP_SINGLE_ISSUER)
    public static let deferTaskrun = UringSetupFlags(rawValue: IORING_SETUP_DEFER_TASKRUN)

    /// The sets tried by default, best first: cooperative task running (no inter-processor
    /// interrupt per completion; 5.19+), then submit-all (5.18+), then a plain ring.
    ///
    /// The flags of `refused` are never in it.
    public static let defaultLadder: [UringSetupFlags] = [
        [.coopTaskrun, .taskrunFlag, .submitAll],
        [.submitAll],
        [],
    ]

    /// Flags a context cannot use: SINGLE_ISSUER and DEFER_TASKRUN, since any thread may
    /// submit and poll (with SINGLE_ISSUER every thread but the creator gets EEXIST from
    /// submission; DEFER_TASKRUN posts poll-driven completions only when that one thread
    /// enters the kernel to wait); SQPOLL, whose kernel thread would own every request (and submit
    /// with the credentials of the context's creator); IOPOLL, which only polled block
    /// devices accept; SQE128 and CQE32, whose entries the backend does not lay out.
    public static let refused: UringSetupFlags = [.singleIssuer, .deferTaskrun, .sqPoll, .ioPoll, .sqe128, .cqe32]

    // The refused flags that have no public name (nothing can use them).
    package static let sqPoll = UringSetupFlags(rawValue: UInt32(IORING_SETUP_SQPOLL))
    package static let ioPoll = UringSetupFlags(rawValue: UInt32(IORING_SETUP_IOPOLL))
    package static let sqe128 = UringSetupFlags(rawValue: UInt32(IORING_SETUP_SQE128))
    package static let cqe32 = UringSetupFlags(rawValue: UInt32(IORING_SETUP_CQE32))

    private static let names: [(UringSetupFlags, String)] = [
        (.cqSize, "CQSIZE"), (.clamp, "CLAMP"), (.submitAll, "SUBMIT_ALL"), (.coopTaskrun, "COOP_TASKRUN"),
        (.taskrunFlag, "TASKRUN_FLAG"), (.singleIssuer, "SINGLE_ISSUER"), (.deferTaskrun, "DEFER_TASKRUN"),
    ]

    public var description: String {
        let named = Self.names.filter { contains($0.0) }.map(\.1)
        return named.isEmpty ? "none" : named.joined(separator: "|")
    }
}
