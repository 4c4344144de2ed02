#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Testing

/// The errno io_uring is blocked with when the tests run under tools/no-io-uring
/// (scripts/test sets LAIO_EXPECT_IO_URING_BLOCKED=eperm|enosys), nil otherwise.
let expectedUringBlock: Errno? = {
    guard let value = getenv("LAIO_EXPECT_IO_URING_BLOCKED").map({ String(cString: $0) }) else { return nil }
    switch value {
    case "eperm": return .notPermitted
    case "enosys": return .noFunction
    default: return nil
    }
}()

/// A machine where io_uring is blocked, which tools/no-io-uring makes (scripts/test runs
/// this suite under it); skipped elsewhere.
@Suite("io_uring blocked")
struct UringBlockedTests {
    @Test("uring fails at creation naming the cause, auto runs everything on the pool, the others work",
          .enabled(if: expectedUringBlock != nil, "runs under tools/no-io-uring (scripts/test does that)"))
    func blockedBySeccomp() throws {
        let block = try #require(expectedUringBlock)
        #expect(throws: ContextError.setupFailed(.uring, block)) { try Context(backend: .uring) }
        do {
            _ = try Context(backend: .uring)
        } catch {
            let cause = block == .notPermitted ? "seccomp" : "no io_uring"
            #expect("\(error)".contains(cause), "\(error)")
        }
        let laio = try Context(backend: .auto)
        let reason = try #require(laio.uringUnavailableReason)
        #expect(reason.contains("\(block)".prefix(6)), "\(reason)")
        #expect(laio.details.contains("io_uring not used"))
        try checkPoolOnlyAuto(laio)
        for kind: BackendKind in [.threads, .blocking] {
            let other = try Context(backend: kind)
            #expect(try complete(.syscall(number: SyscallNumber.getpid), in: other) == .success(Int(getpid())))
        }
    }
}
