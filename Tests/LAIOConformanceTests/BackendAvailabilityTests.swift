import LAIO
import LAIOTestSupport
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// One test per backend word: it runs (and checks that the backend really starts as the
/// one asked for) where the backend can start, and is skipped with the reason elsewhere.
@Suite("Backend availability")
struct BackendAvailabilityTests {
    func startsAsAsked(_ kind: BackendKind) throws {
        let laio = try Context(backend: kind)
        #expect(laio.backendKind == kind)
        try expectWorkingCall(in: laio)
        #expect(try complete(.syscall(number: SyscallNumber.getpid), in: laio) == kind.expectedGetpid)
    }

    @Test("auto starts and runs the conformance suite", .enabled(if: Backends.starts(.auto), Comment(rawValue: Backends.unavailableReason(.auto))))
    func auto() throws { try startsAsAsked(.auto) }

    @Test("uring starts and runs the conformance suite", .enabled(if: Backends.starts(.uring), Comment(rawValue: Backends.unavailableReason(.uring))))
    func uring() throws { try startsAsAsked(.uring) }

    @Test("threads starts and runs the conformance suite", .enabled(if: Backends.starts(.threads), Comment(rawValue: Backends.unavailableReason(.threads))))
    func threads() throws { try startsAsAsked(.threads) }

    @Test("blocking starts and runs the conformance suite", .enabled(if: Backends.starts(.blocking), Comment(rawValue: Backends.unavailableReason(.blocking))))
    func blocking() throws { try startsAsAsked(.blocking) }
}
