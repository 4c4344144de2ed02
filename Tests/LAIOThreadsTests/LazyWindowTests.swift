#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Testing

/// Tests of the `threads` backend's own settings: the lazy window, the pool size and
/// the bound on outstanding operations.
@Suite("Thread pool")
struct ThreadPoolTests {
    @Test("a zero lazy window never waits, and every call is still answered once")
    func zeroWindow() throws {
        let laio = try Context(backend: .threads, threads: ThreadPoolSettings(workers: 2, lazyWindow: .zero))
        let start = ContinuousClock.now
        guard case let .inProgress(sleeper) = try laio.submit(.nanosleep(.seconds(600))) else {
            Issue.record("a 600 s sleep completed synchronously")
            return
        }
        // Far below the call's length, however busy the machine: submit did not wait for it.
        #expect(ContinuousClock.now - start < .seconds(30))
        var handles: Set<Handle> = [sleeper]
        var synchronous = 0
        for _ in 0..<50 {
            switch try laio.submit(.syscall(number: SyscallNumber.getpid)) {
            case .inProgress(let handle): handles.insert(handle)
            case .completed(let result):  // the worker was done before submit looked
                #expect(result == .success(Int(getpid())))
                synchronous += 1
            }
        }
        #expect(handles.count + synchronous == 51)
        try laio.cancel(sleeper)
        for (handle, result) in try collect(handles, in: laio) {
            #expect(result == (handle == sleeper ? .failure(.canceled) : .success(Int(getpid()))), "\(handle)")
        }
    }

    @Test("a call that finishes inside the lazy window returns synchronously")
    func callInsideWindow() throws {
        let laio = try Context(backend: .threads, threads: ThreadPoolSettings(workers: 2, lazyWindow: .seconds(2)))
        let start = ContinuousClock.now
        #expect(try laio.submit(.nanosleep(.milliseconds(30))) == .completed(.success(0)))
        #expect(ContinuousClock.now - start >= .milliseconds(29))
        #expect(laio.outstandingCount == 0)
    }

    @Test("a call that outlasts the lazy window goes to the background after the window")
    func callOutlastsWindow() throws {
        let laio = try Context(backend: .threads, threads: ThreadPoolSettings(workers: 2, lazyWindow: .milliseconds(20)))
        let start = ContinuousClock.now
        // Far longer than any stall of a busy machine: it cannot finish inside the window.
        guard case let .inProgress(handle) = try laio.submit(.nanosleep(.seconds(600))) else {
            Issue.record("a 600 s sleep completed inside a 20 ms window")
            return
        }
        let returned = ContinuousClock.now - start
        // The window is waited out; the upper bound only says submit did not wait for the call.
        #expect(returned >= .milliseconds(19) && returned < .seconds(300), "submit took \(returned)")
        try laio.cancel(handle)
        let completions = try laio.poll(maximum: 4, timeout: .seconds(60))
        #expect(completions == [Completion(handle: handle, result: .failure(.canceled))])
    }

    @Test("calls queue behind busy workers and run when one is free")
    func queueBehindBusyWorkers() throws {
        let laio = try Context(backend: .threads, threads: ThreadPoolSettings(workers: 1, lazyWindow: .milliseconds(50)))
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let byte = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
        defer { byte.deallocate() }
        guard case let .inProgress(blocked) = try laio.submit(.read(fd: r, buffer: byte)) else {
            Issue.record("a read on an empty pipe completed synchronously")
            return
        }
        // The only worker is blocked, so even getpid cannot finish inside the window.
        guard case let .inProgress(queued) = try laio.submit(.syscall(number: SyscallNumber.getpid)) else {
            Issue.record("a call completed although the only worker was blocked")
            return
        }
        #expect(Glibc.write(w, "!", 1) == 1)
        #expect(try collect([blocked, queued], in: laio) == [blocked: .success(1), queued: .success(Int(getpid()))])
    }

    @Test("at capacity, a credit returned by poll always finds a free slot (completed and cancelled calls)")
    func slotFreeBeforeCredit() throws {
        // Capacity 1: each call's slot must be free again by the time poll hands its
        // completion out, or the next submit finds no slot for the credit it was given.
        let laio = try Context(backend: .threads, threads: ThreadPoolSettings(workers: 1, lazyWindow: .zero, capacity: 1))
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
        defer { buffer.deallocate() }
        for round in 0..<5_000 {
            let handle = try submitBlockedRead(laio, fd: r, into: buffer)
            if round % 2 == 0 {
                #expect(Glibc.write(w, "x", 1) == 1)
                #expect(try laio.poll(maximum: 1, timeout: .seconds(5)).first?.handle == handle)
            } else {
                // Blocked in read: interrupted; the cancelled call's slot is freed first too.
                try laio.cancel(handle)
                #expect(try laio.poll(maximum: 1, timeout: .seconds(5)).first?.result == .failure(.canceled))
            }
        }
        // A call queued behind a busy worker and cancelled there.
        let blocker = try submitBlockedRead(laio, fd: r, into: buffer)
        #expect(throws: Errno.resourceTemporarilyUnavailable) { try laio.submit(.read(fd: r, buffer: buffer)) }
        try laio.cancel(blocker)
        _ = try laio.poll(maximum: 1, timeout: .seconds(5))
        #expect(laio.outstandingCount == 0)
    }

    @Test("at capacity submit answers EAGAIN, and recovers when completions are polled")
    func backpressure() throws {
        let laio = try Context(backend: .threads, threads: ThreadPoolSettings(workers: 2, lazyWindow: .zero, capacity: 4))
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 1)
        defer { buffer.deallocate() }
        for i in 0..<4 {
            guard case .inProgress = try laio.submit(.read(fd: r, buffer: UnsafeMutableRawBufferPointer(rebasing: buffer[i..<i + 1]))) else {
                Issue.record("read \(i) completed synchronously")
                return
            }
        }
        for _ in 0..<3 {
            #expect(throws: Errno.resourceTemporarilyUnavailable) { try laio.submit(.syscall(number: SyscallNumber.getpid)) }
        }
        #expect(Glibc.write(w, "abcd", 4) == 4)
        // Finished but not yet polled still counts against capacity.
        usleep(50_000)
        #expect(throws: Errno.resourceTemporarilyUnavailable) { try laio.submit(.syscall(number: SyscallNumber.getpid)) }
        var delivered = 0
        while delivered < 4 { delivered += try laio.poll(maximum: 8, timeout: .seconds(5)).count }
        #expect(laio.outstandingCount == 0)
        // Room again: four more calls are accepted.
        let (r2, w2) = try makePipe()
        defer { close(r2); close(w2) }
        for i in 0..<4 {
            guard case .inProgress = try laio.submit(.read(fd: r2, buffer: UnsafeMutableRawBufferPointer(rebasing: buffer[i..<i + 1]))) else {
                Issue.record("read \(i) completed synchronously")
                return
            }
        }
        #expect(laio.outstandingCount == 4)
        #expect(throws: Errno.resourceTemporarilyUnavailable) { try laio.submit(.syscall(number: SyscallNumber.getpid)) }
    }

    @Test("cancel interrupts a worker blocked in the kernel, every time")
    func cancelInterruptsRunningCall() throws {
        let laio = try Context(backend: .threads, threads: ThreadPoolSettings(workers: 4, lazyWindow: .zero))
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let byte = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
        defer { byte.deallocate() }
        for _ in 0..<200 {
            guard case let .inProgress(handle) = try laio.submit(.read(fd: r, buffer: byte)) else {
                Issue.record("a zero window answered synchronously")
                return
            }
            try laio.cancel(handle)
            #expect(try laio.poll(maximum: 4, timeout: .seconds(5)) == [Completion(handle: handle, result: .failure(.canceled))])
        }
    }

    @Test("settings that cannot work are refused")
    func badSettings() {
        for settings in [ThreadPoolSettings(workers: 0), ThreadPoolSettings(capacity: 0),
                         ThreadPoolSettings(lazyWindow: .milliseconds(-1)),
                         ThreadPoolSettings(workers: ThreadPoolSettings.workerLimit + 1),
                         ThreadPoolSettings(minimumWorkers: 0), ThreadPoolSettings(minimumWorkers: 8, maximumWorkers: 4),
                         ThreadPoolSettings(keepAlive: .seconds(-1)),
                         ThreadPoolSettings(capacity: ThreadPoolSettings.maximumCapacity + 1)] {
            #expect(throws: ContextError.setupFailed(.threads, .invalidArgument)) {
                try Context(backend: .threads, threads: settings)
            }
        }
    }

    @Test("the backend word comes from LAIO_BACKEND, and a bad word is a clear error")
    func backendWords() throws {
        #expect(try BackendKind.fromEnvironment(nil) == .auto)
        #expect(try BackendKind.fromEnvironment("") == .auto)
        for kind in BackendKind.allCases { #expect(try BackendKind.fromEnvironment(kind.rawValue) == kind) }
        #expect(throws: ContextError.unknownBackend("io_uring")) { try BackendKind.fromEnvironment("io_uring") }
        let message = "\(ContextError.unknownBackend("fast"))"
        #expect(message.contains("'fast'") && message.contains("auto, uring, threads, blocking"))
    }
}
