import LAIO
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

    @Test("auto starts and runs the conformance suite", .enabled(if: Backends.startable.contains(.auto), Backends.skipReason(.auto)))
    func auto() throws { try startsAsAsked(.auto) }

    @Test("uring starts and runs the conformance suite", .enabled(if: Backends.startable.contains(.uring), Backends.skipReason(.uring)))
    func uring() throws { try startsAsAsked(.uring) }

    @Test("threads starts and runs the conformance suite", .enabled(if: Backends.startable.contains(.threads), Backends.skipReason(.threads)))
    func threads() throws { try startsAsAsked(.threads) }

    @Test("blocking starts and runs the conformance suite", .enabled(if: Backends.startable.contains(.blocking), Backends.skipReason(.blocking)))
    func blocking() throws { try startsAsAsked(.blocking) }
}
