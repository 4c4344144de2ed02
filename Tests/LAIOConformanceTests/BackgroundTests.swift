#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Testing

@Suite("Background calls and poll")
struct BackgroundTests {
    @Test("a read on an empty pipe goes in progress and completes through poll", arguments: asynchronousBackends)
    func pipeRead(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        let handle = try submitBlockedRead(laio, fd: r, into: buffer)
        #expect(try laio.poll(maximum: 4, timeout: .zero).isEmpty)
        #expect(Glibc.write(w, "hello", 5) == 5)
        #expect(try awaitCompletion(of: handle, in: laio) == .success(5))
        #expect(Array(buffer.prefix(5)) == Array("hello".utf8))
        try expectNoCompletion(in: laio)
    }

    @Test("a read on an idle loopback socket goes in progress and completes through poll", arguments: asynchronousBackends)
    func socketRead(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let (client, server) = try makeSocketPair()
        defer { close(client); close(server) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        guard case let .inProgress(handle) = try laio.submit(.recv(fd: server, buffer: buffer)) else {
            Issue.record("a recv on an idle socket completed synchronously")
            return
        }
        #expect(send(client, "ping!!", 6, 0) == 6)
        #expect(try awaitCompletion(of: handle, in: laio) == .success(6))
        #expect(Array(buffer.prefix(6)) == Array("ping!!".utf8))
    }

    @Test("the blocking backend always answers synchronously", arguments: [BackendKind.blocking])
    func blockingIsSynchronous(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let start = ContinuousClock.now
        #expect(try laio.submit(.nanosleep(.milliseconds(20))) == .completed(.success(0)))
        #expect(ContinuousClock.now - start >= .milliseconds(19))
        #expect(try laio.poll(maximum: 1, timeout: .zero).isEmpty)
    }

    @Test("10,000 concurrent background operations are each delivered exactly once", arguments: asynchronousBackends)
    func tenThousand(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let count = 10_000
        let buffers = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
        defer { buffers.deallocate() }
        var pending = Set<Handle>()
        for i in 0..<count {
            let one = UnsafeMutableRawBufferPointer(rebasing: buffers[i..<i + 1])
            switch try laio.submit(.read(fd: r, buffer: one)) {
            case .completed(let result): Issue.record("read \(i) on an empty pipe completed: \(result)")
            case .inProgress(let handle):
                #expect(pending.insert(handle).inserted, "handle \(handle) issued twice while outstanding")
            }
        }
        #expect(pending.count == count)
        #expect(laio.outstandingCount == count)
        // One byte per read.
        let data = [UInt8](repeating: 0x5A, count: count)
        var written = 0
        while written < count {
            let n = data.withUnsafeBytes { Glibc.write(w, $0.baseAddress! + written, count - written) }
            #expect(n > 0)
            if n <= 0 { break }
            written += n
        }
        let results = try collect(pending, in: laio, timeout: .seconds(60))
        let bytes = results.values.reduce(0) { $0 + ((try? $1.get()) ?? 0) }
        #expect(bytes == count)
        #expect(buffers.allSatisfy { $0 == 0x5A })
        #expect(laio.outstandingCount == 0)
        try expectNoCompletion(in: laio)
    }

    @Test("poll timeouts are honoured", arguments: allBackends)
    func pollTimeouts(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        var start = ContinuousClock.now
        #expect(try laio.poll(maximum: 8, timeout: .zero).isEmpty)
        // `.zero` never sleeps; the bound is generous for a busy machine's scheduling stalls.
        #expect(ContinuousClock.now - start < .seconds(2))
        start = ContinuousClock.now
        #expect(try laio.poll(maximum: 8, timeout: .milliseconds(80)).isEmpty)
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(79) && waited < .seconds(2), "waited \(waited)")
    }

    @Test("a completion wakes an infinite poll", arguments: asynchronousBackends)
    func completionWakesPoll(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1)
        defer { buffer.deallocate() }
        let handle = try submitBlockedRead(laio, fd: r, into: buffer)
        let writer = TestThread { usleep(100_000); _ = Glibc.write(w, "x", 1) }
        let start = ContinuousClock.now
        let completions = try laio.poll(maximum: 8, timeout: nil)
        #expect(completions == [Completion(handle: handle, result: .success(1))])
        #expect(ContinuousClock.now - start >= .milliseconds(90))
        writer.join()
    }

    @Test("the notification descriptor is readable exactly while completions wait", arguments: asynchronousBackends)
    func notificationDescriptor(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let fd = laio.notificationDescriptor
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1)
        defer { buffer.deallocate() }
        #expect(!isReadable(fd))
        let handle = try submitBlockedRead(laio, fd: r, into: buffer)
        #expect(!isReadable(fd, waiting: 20))
        #expect(Glibc.write(w, "ab", 2) == 2)
        #expect(isReadable(fd, waiting: 5000))
        #expect(isReadable(fd), "still readable until polled")
        #expect(try laio.poll(maximum: 8, timeout: .zero) == [Completion(handle: handle, result: .success(2))])
        #expect(!isReadable(fd))
    }

    @Test("poll with no room for completions is EINVAL", arguments: allBackends)
    func pollZeroCapacity(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        var completions: [Completion] = []
        #expect(throws: Errno.invalidArgument) { try laio.poll(into: &completions, maximum: 0, timeout: .zero) }
        #expect(throws: Errno.invalidArgument) { try laio.poll(maximum: -1, timeout: nil) }
    }
}

@Suite("Concurrency")
struct ConcurrencyTests {
    @Test("submits from several threads at once: unique handles, each reported once", arguments: allBackends)
    func concurrentSubmitters(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let threads = 4, perThread = 2_000
        let outcomes = LockBox<[Outcome]>([])
        let zero = open("/dev/zero", O_RDONLY)
        defer { close(zero) }
        // One buffer for all: every read writes the same zeros, and it outlives every poll below.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        defer { buffer.deallocate() }
        let address = Int(bitPattern: buffer.baseAddress)  // crosses into the threads as a plain value
        let workers = (0..<threads).map { _ in
            TestThread {
                var mine: [Outcome] = []
                mine.reserveCapacity(perThread)
                for _ in 0..<perThread {
                    // Capacity is far above 8,000, so EAGAIN would be a bug.
                    let buffer = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: address), count: 8)
                    mine.append((try? laio.submit(.read(fd: zero, buffer: buffer))) ?? .completed(.failure(.resourceTemporarilyUnavailable)))
                }
                outcomes.withLock { $0 += mine }
            }
        }
        for worker in workers { worker.join() }
        let all = outcomes.withLock { $0 }
        #expect(all.count == threads * perThread)
        var pending = Set<Handle>()
        for outcome in all {
            switch outcome {
            case .completed(let result): #expect(result == .success(8))
            case .inProgress(let handle): #expect(pending.insert(handle).inserted, "\(handle) issued twice")
            }
        }
        for (handle, result) in try collect(pending, in: laio, timeout: .seconds(30)) {
            #expect(result == .success(8), "\(handle)")
        }
        #expect(laio.outstandingCount == 0)
    }

    @Test("several threads polling one context each get distinct completions", arguments: asynchronousBackends)
    func concurrentPollers(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let count = 400
        let buffers = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
        defer { buffers.deallocate() }
        var issued = Set<Handle>()
        for i in 0..<count {
            let handle = try submitBlockedRead(laio, fd: r, into: UnsafeMutableRawBufferPointer(rebasing: buffers[i..<i + 1]))
            issued.insert(handle)
        }
        let received = LockBox<[Handle]>([])
        let deadline = ContinuousClock.now + .seconds(30)
        let pollers = (0..<3).map { _ in
            TestThread {
                var mine: [Completion] = []
                // Each poller stops once every handle is accounted for (or at the deadline).
                while received.withLock({ $0.count }) < count && ContinuousClock.now < deadline {
                    mine.removeAll(keepingCapacity: true)
                    _ = try? laio.poll(into: &mine, maximum: 16, timeout: .milliseconds(50))
                    received.withLock { $0 += mine.map(\.handle) }
                }
            }
        }
        let data = [UInt8](repeating: 7, count: count)
        _ = data.withUnsafeBytes { Glibc.write(w, $0.baseAddress, count) }
        for poller in pollers { poller.join() }
        let handles = received.withLock { $0 }
        #expect(handles.count == count)
        #expect(Set(handles) == issued)
    }
}
