#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Synchronization
import Testing

/// What the application's signal handlers of these tests count.
private enum ApplicationSignal {
    static let hits = Atomic<Int>(0)
}

/// The application's handlers: count and return. Atomics are safe in a signal handler.
private let countingHandler: @convention(c) (Int32) -> Void = { _ in
    ApplicationSignal.hits.add(1, ordering: .relaxed)
}
private let countingInfoHandler: @convention(c) (Int32, UnsafeMutablePointer<siginfo_t>?, UnsafeMutableRawPointer?) -> Void = { _, _, _ in
    ApplicationSignal.hits.add(1, ordering: .relaxed)
}

/// Installs the counting handler on `signal` (the SA_SIGINFO form when `withInfo`).
private func installApplicationHandler(_ signal: Int32, withInfo: Bool) -> Bool {
    var action = sigaction()
    sigemptyset(&action.sa_mask)
    if withInfo {
        action.__sigaction_handler.sa_sigaction = countingInfoHandler
        action.sa_flags = SA_SIGINFO | SA_RESTART
    } else {
        action.__sigaction_handler.sa_handler = countingHandler
        action.sa_flags = SA_RESTART
    }
    return sigaction(signal, &action, nil) == 0
}

/// Whether `signal`'s handler is still the application's counting handler.
private func applicationHandlerInstalled(_ signal: Int32, withInfo: Bool) -> Bool {
    var current = sigaction()
    guard sigaction(signal, nil, &current) == 0 else { return false }
    if withInfo {
        return current.sa_flags & SA_SIGINFO != 0
            && unsafeBitCast(current.__sigaction_handler.sa_sigaction, to: UnsafeRawPointer?.self)
            == unsafeBitCast(countingInfoHandler, to: UnsafeRawPointer?.self)
    }
    return current.sa_flags & SA_SIGINFO == 0
        && unsafeBitCast(current.__sigaction_handler.sa_handler, to: UnsafeRawPointer?.self)
        == unsafeBitCast(countingHandler, to: UnsafeRawPointer?.self)
}

/// Makes, uses and closes a context on `kind` with `cancelSignal`: a read of /dev/zero, and
/// where calls can go to the background a pipe read cancelled while it waits (on `threads`
/// the cancel signal interrupts its worker). Returns a failed check's number, or 0.
private func useContext(_ kind: BackendKind, cancelSignal: Int32?) -> Int32 {
    guard let laio = try? Context(backend: kind, threads: ThreadPoolSettings(workers: 2), cancelSignal: cancelSignal) else {
        return 1
    }
    defer { laio.close() }
    let zero = open("/dev/zero", O_RDONLY)
    defer { close(zero) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
    defer { buffer.deallocate() }
    guard (try? complete(.read(fd: zero, buffer: buffer), in: laio)) == .success(8) else { return 2 }
    guard kind != .blocking else { return 0 }
    guard let (r, w) = try? makePipe() else { return 3 }
    defer { close(r); close(w) }
    guard let handle = try? submitBlockedRead(laio, fd: r, into: buffer) else { return 3 }
    guard (try? laio.cancel(handle)) != nil,
          (try? awaitCompletion(of: handle, in: laio, timeout: .seconds(60))) == .failure(.canceled) else { return 4 }
    return 0
}

@Suite("The cancel signal: chosen by the application, never taken from it", .serialized)
struct SignalTests {
    /// Runs in a forked child, where the test may own every real-time signal (in the test
    /// process other tests' contexts use the default one meanwhile). For each real-time
    /// signal in turn the child installs a counting handler of its own (plain and SA_SIGINFO
    /// in turn), makes, uses and closes contexts with the default cancel signal, and then
    /// checks that its handler is still installed, that a raised signal reaches it exactly
    /// once and that LAIO never sent it one. On the default signal itself, `threads` and
    /// `auto` refuse with `cancelSignalTaken` and work with another chosen signal.
    @Test("app-signal-taken (issue 27): an application's handler on every real-time signal survives making, using and closing contexts",
          .disabled(if: underThreadSanitizer, "ThreadSanitizer does not support fork() in a multithreaded process"),
          .enabled(if: forkTestsAlone, Comment(rawValue: forkTestsSkipped)),
          arguments: allBackends)
    func applicationHandlersSurvive(_ kind: BackendKind) throws {
        let minimum = __libc_current_sigrtmin(), maximum = __libc_current_sigrtmax()
        _ = ApplicationSignal.hits.load(ordering: .relaxed)  // initialized before any handler runs
        let takesSignal = kind == .threads || kind == .auto
        let child = Glibc.fork()
        if child == 0 {
            // Exit status: check number << 5 | the signal's index above SIGRTMIN.
            func fail(_ check: Int32, _ signal: Int32) -> Never { _exit(check << 5 | (signal - minimum)) }
            for signal in minimum...maximum {
                let withInfo = signal % 2 == 1
                guard installApplicationHandler(signal, withInfo: withInfo) else { fail(1, signal) }
                ApplicationSignal.hits.store(0, ordering: .relaxed)
                if signal == Context.defaultCancelSignal && takesSignal {
                    do {
                        _ = try Context(backend: kind)
                        fail(2, signal)
                    } catch {
                        if error != .cancelSignalTaken(signal) { fail(3, signal) }
                    }
                    // Another signal, chosen by the application, works.
                    let other = signal == maximum ? signal - 1 : signal + 1
                    if useContext(kind, cancelSignal: other) != 0 { fail(4, signal) }
                } else {
                    if useContext(kind, cancelSignal: nil) != 0 { fail(5, signal) }
                }
                guard applicationHandlerInstalled(signal, withInfo: withInfo) else { fail(6, signal) }
                guard ApplicationSignal.hits.load(ordering: .relaxed) == 0 else { fail(7, signal) }
                var set = sigset_t()
                sigemptyset(&set)
                sigaddset(&set, signal)
                pthread_sigmask(SIG_UNBLOCK, &set, nil)
                raise(signal)
                guard ApplicationSignal.hits.load(ordering: .relaxed) == 1 else { fail(7, signal) }
                var restore = sigaction()
                restore.__sigaction_handler.sa_handler = SIG_DFL
                sigaction(signal, &restore, nil)
            }
            _exit(0)
        }
        try #require(child > 0)
        // A child that hangs fails the test, not the run.
        guard let status = waitForChild(child, bound: .seconds(120)) else { return }
        #expect(status & 0x7f == 0, "the child died of signal \(status & 0x7f)")
        let code = (status >> 8) & 0xff
        let checks = [1: "installing the application's handler", 2: "a context took the application's signal",
                      3: "the refusal was not cancelSignalTaken", 4: "a context with another chosen signal failed",
                      5: "making, using or closing a context failed", 6: "the application's handler was replaced",
                      7: "the application's handler did not get exactly its own signal"]
        #expect(code == 0, "SIGRTMIN+\(code & 31): \(checks[Int(code >> 5)] ?? "check \(code >> 5)")")
    }

    @Test("a chosen cancel signal is used; one that is not a real-time signal is refused with EINVAL's error",
          arguments: allBackends)
    func chosenSignal(_ kind: BackendKind) throws {
        let chosen = __libc_current_sigrtmax() - 2
        let laio = try Context(backend: kind, threads: ThreadPoolSettings(workers: 2), cancelSignal: chosen)
        #expect(laio.cancelSignal == (kind == .threads || kind == .auto ? chosen : nil))
        laio.close()
        #expect(useContext(kind, cancelSignal: chosen) == 0)
        #expect(throws: ContextError.invalidCancelSignal("\(SIGUSR1)")) {
            try Context(backend: kind, cancelSignal: SIGUSR1)
        }
        #expect(throws: ContextError.invalidCancelSignal("0")) { try Context(backend: kind, cancelSignal: 0) }
    }
}
