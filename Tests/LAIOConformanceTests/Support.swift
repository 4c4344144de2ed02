#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Testing

// What only this suite uses; what other tests or laio-stress use too is in LAIOTestSupport.

/// Every backend that starts here: the arguments of the tests every backend must pass.
let allBackends = Backends.startable
/// The startable backends whose calls can go to the background.
let asynchronousBackends = Backends.asynchronous

extension BackendKind {
    /// Whether this backend runs any system call by number. `uring` runs only what io_uring
    /// has an opcode for and answers ENOSYS for the rest (getpid, sendfile, ...).
    var runsAnySyscall: Bool { self != .uring }

    /// What a raw getpid gives on this backend.
    var expectedGetpid: Result<Int, Errno> { runsAnySyscall ? .success(Int(getpid())) : .failure(.noFunction) }
}

/// Reads 8 bytes of /dev/zero through `laio` and checks the answer: a call every backend runs.
func expectWorkingCall(in laio: Context, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let fd = open("/dev/zero", O_RDONLY)
    defer { close(fd) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1)
    defer { buffer.deallocate() }
    #expect(try complete(.read(fd: fd, buffer: buffer), in: laio) == .success(8), sourceLocation: sourceLocation)
}

/// A context on `kind` with test settings.
func makeContext(_ kind: BackendKind, threads: ThreadPoolSettings = ThreadPoolSettings()) throws -> Context {
    try Context(backend: kind, threads: threads)
}

/// Whether ThreadSanitizer's runtime is in this process. It does not support fork() in a
/// multithreaded process (the child can hang in the runtime's own locks), so the fork test
/// is skipped under it, with that reason; it runs in every other build.
let underThreadSanitizer = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__tsan_init") != nil

/// Whether the tests whose forked child runs Swift code may run: only in an invocation of
/// their own (`LAIO_FORK_TESTS=1`, as scripts/test runs them, one case at a time). A child
/// forked while another thread of the parent holds a lock of the Swift runtime (its generic
/// metadata cache, seen here) waits for it forever; beside the rest of the suite that
/// happened about once in ten runs.
let forkTestsAlone = getenv("LAIO_FORK_TESTS") != nil
let forkTestsSkipped = "run alone by scripts/test (LAIO_FORK_TESTS=1): a forked child can wait forever for a lock of the Swift runtime that another test's thread held at the fork"

/// Waits for forked `child` to exit, for at most `bound` (far above what the child's work
/// needs: the bound only turns a hang into a failure). Returns its wait status, or nil after
/// killing a child that hung (recorded as an issue).
func waitForChild(_ child: pid_t, bound: Duration, sourceLocation: SourceLocation = #_sourceLocation) -> Int32? {
    var status: Int32 = 0
    let deadline = ContinuousClock.now + bound
    var waited = waitpid(child, &status, WNOHANG)
    while waited == 0 && ContinuousClock.now < deadline {
        usleep(10_000)
        waited = waitpid(child, &status, WNOHANG)
    }
    if waited == 0 {
        kill(child, SIGKILL)
        waitpid(child, &status, 0)
        Issue.record("the child hung for \(bound)", sourceLocation: sourceLocation)
        return nil
    }
    return status
}
