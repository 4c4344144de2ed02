#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims
import LAIO
import LAIOTestSupport
import Testing

/// The pools behind a context: `threads`, and `auto` on its pool alone (as where io_uring
/// is missing or blocked).
struct PoolRoute: CustomTestStringConvertible, Sendable {
    let kind: BackendKind
    let name: String
    var testDescription: String { name }

    static let all = [PoolRoute(kind: .threads, name: "threads"), PoolRoute(kind: .auto, name: "auto, pool only")]
        .filter { Backends.starts($0.kind) }

    func makeContext(_ settings: ThreadPoolSettings) throws -> Context {
        try Context(backend: kind, threads: settings, auto: AutoSettings(useUring: false))
    }
}

/// One byte of its own for each of `count` calls.
private final class Bytes: @unchecked Sendable {
    // @unchecked: each call owns its byte until reported; the test reads them after that.
    let buffer: UnsafeMutableRawBufferPointer
    init(_ count: Int) {
        buffer = .allocate(byteCount: count, alignment: 1)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
    }
    subscript(index: Int) -> UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: buffer[index..<index + 1]) }
    deinit { buffer.deallocate() }
}

/// Submits `count` one-byte reads of the empty pipe `fd`; each must go to the background.
private func submitBlockedReads(_ count: Int, of fd: Int32, into bytes: Bytes, _ laio: Context) throws -> Set<Handle> {
    var handles = Set<Handle>()
    for index in 0..<count { handles.insert(try submitBlockedRead(laio, fd: fd, into: bytes[index])) }
    return handles
}

/// Writes `count` bytes into `fd` and collects the one-byte reads `handles`: each reads one.
private func release(_ handles: Set<Handle>, writing fd: Int32, _ laio: Context,
                     sourceLocation: SourceLocation = #_sourceLocation) throws {
    let data = [UInt8](repeating: UInt8(ascii: "x"), count: handles.count)
    #expect(data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == handles.count, sourceLocation: sourceLocation)
    let results = try collect(handles, in: laio, timeout: .seconds(120))
    #expect(results.values.allSatisfy { $0 == .success(1) }, sourceLocation: sourceLocation)
}

/// Waits until `condition` holds, for at most `limit` (a bound far beyond what the condition
/// needs, so that a slow machine does not fail it); returns whether it held.
private func eventually(within limit: Duration = .seconds(60), _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + limit
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        var pause = timespec(tv_sec: 0, tv_nsec: 5_000_000)
        nanosleep(&pause, nil)
    }
    return true
}

@Suite("A continuation for every call that blocks")
struct CrowdTests {
    static let crowd = 1_000

    @Test("1,000 calls blocked at once: a cached read and a quick call still answer beside them, and each blocked call answers once released",
          arguments: asynchronousBackends)
    func crowdOfBlockedCalls(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        defer { laio.close() }
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let bytes = Bytes(Self.crowd)
        let handles = try submitBlockedReads(Self.crowd, of: r, into: bytes, laio)
        // On a pool, each blocked call holds a worker of its own.
        // (New workers start new ones while calls wait, so the count grows after submit.)
        if kind == .threads || laio.uringUnavailableReason != nil {
            #expect(eventually { (laio.poolWorkers?.live ?? 0) >= Self.crowd }, "\(laio.poolWorkers!) workers")
        }

        // None of the blocked calls can finish before the pipe is written, so an answer
        // here did not wait behind them.
        do {
            let file = try makeFile("crowd-cached", bytes: 4096)
            defer { unlink(file.path) }
            let fd = open(file.path, O_RDONLY)
            try #require(fd >= 0)
            defer { close(fd) }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
            defer { buffer.deallocate() }
            let outcome = try laio.submit(.pread(fd: fd, buffer: buffer, offset: 0))
            switch outcome {
            case let .completed(result):
                #expect(result == .success(4096))
            case let .inProgress(handle):
                // `threads` hands every call to a worker; a synchronous answer depends on the lazy window.
                #expect(kind == .threads, "a cached read went to the background on \(kind)")
                #expect(try awaitCompletion(of: handle, in: laio, timeout: .seconds(60)) == .success(4096))
            }
            #expect(Array(buffer) == file.content)
        }
        #expect(try complete(.syscall(number: SyscallNumber.getpid), in: laio) == kind.expectedGetpid)

        try release(handles, writing: w, laio)
        #expect(Array(bytes.buffer) == [UInt8](repeating: UInt8(ascii: "x"), count: Self.crowd))
    }

    @Test("close with 1,000 blocked calls: each is reported once, cancelled", arguments: asynchronousBackends)
    func closeWithCrowd(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let bytes = Bytes(Self.crowd)
        let handles = try submitBlockedReads(Self.crowd, of: r, into: bytes, laio)
        laio.close()
        var seen = Set<Handle>()
        while let batch = try? laio.poll(maximum: 256, timeout: .zero), !batch.isEmpty {
            for completion in batch {
                #expect(seen.insert(completion.handle).inserted)
                #expect(completion.result == .failure(.canceled))
            }
        }
        #expect(seen == handles)
        if let workers = laio.poolWorkers { #expect(workers.live == 0) }
    }

    @Test("the pool grows for blocked calls and shrinks back to its minimum after the keep-alive",
          arguments: PoolRoute.all)
    func growsAndShrinks(_ route: PoolRoute) throws {
        let laio = try route.makeContext(ThreadPoolSettings(minimumWorkers: 2, keepAlive: .milliseconds(100)))
        defer { laio.close() }
        #expect(laio.poolWorkers?.live == 2)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        for round in 1...2 {
            let count = 40 * round
            let bytes = Bytes(count)
            let handles = try submitBlockedReads(count, of: r, into: bytes, laio)
            // A worker per blocked call: the two kept ones and as many new ones as it took
            // (new workers start new ones while calls wait, so the count grows after submit).
            #expect(eventually { laio.poolWorkers?.live == count }, "\(laio.poolWorkers!) workers")
            #expect(laio.poolWorkers?.live == count)
            try release(handles, writing: w, laio)
            #expect(eventually { laio.poolWorkers?.live == 2 }, "still \(laio.poolWorkers!) workers long after the keep-alive")
        }
        #expect(try #require(laio.poolWorkers).peak <= 80)
    }

    @Test("at its bound the pool queues calls; none fails, and the bound is never passed", arguments: PoolRoute.all)
    func boundHeld(_ route: PoolRoute) throws {
        let laio = try route.makeContext(ThreadPoolSettings(minimumWorkers: 1, maximumWorkers: 4))
        defer { laio.close() }
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let count = 24
        let bytes = Bytes(count)
        var handles: [Handle] = []
        for index in 0..<count { handles.append(try submitBlockedRead(laio, fd: r, into: bytes[index])) }
        #expect(eventually { laio.poolWorkers?.live == 4 }, "\(laio.poolWorkers!) workers")
        // One byte at a time: each answers exactly one read, so the reads finish one by one
        // and each finished one lets a waiting call have its worker.
        var done = Set<Handle>()
        for round in 0..<count {
            #expect(Glibc.write(w, [UInt8(round)], 1) == 1)
            let batch = try laio.poll(maximum: 4, timeout: .seconds(60))
            try #require(batch.count == 1, "round \(round): \(batch)")
            #expect(batch[0].result == .success(1))
            done.insert(batch[0].handle)
            #expect(laio.poolWorkers?.live == 4)
        }
        #expect(done == Set(handles))
        #expect(Set(Array(bytes.buffer)) == Set((0..<count).map(UInt8.init)))
        #expect(try #require(laio.poolWorkers).peak <= 4)
    }
}

/// Thread starts refused by RLIMIT_NPROC. The limit binds only threads that are not root's,
/// so the submitting thread alone takes another user's identity for the submits (the raw
/// system call, which changes one thread; the saved user stays root so that it can come
/// back). Needs root.
/// RLIMIT_NPROC is the process's: the cases run one at a time, so that one's restoring the
/// limit does not end another's refusal.
@Suite("A refused thread start", .serialized,
       .enabled(if: getuid() == 0, "needs root: the submitting thread becomes another user for a moment"))
struct RefusedStartTests {
    @Test("a thread start refused (RLIMIT_NPROC) leaves its call queued: nothing is lost", arguments: PoolRoute.all)
    func refusedStart(_ route: PoolRoute) throws {
        let laio = try route.makeContext(ThreadPoolSettings(minimumWorkers: 2))
        defer { laio.close() }
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let count = 10
        let bytes = Bytes(count)
        // The two workers are up (idle), so no new worker is on its way to start others.
        try #require(eventually { laio.poolWorkers?.peak == 2 })
        let submitted = TestThread.run { () -> Result<Set<Handle>, TestFailure> in
            var saved = rlimit()
            getrlimit(__rlimit_resource_t(__RLIMIT_NPROC.rawValue), &saved)
            var none = saved
            none.rlim_cur = 0
            guard laio_shim_set_thread_user_ids(65534, 65534, 0) == 0 else { return .failure(TestFailure("setresuid")) }
            setrlimit(__rlimit_resource_t(__RLIMIT_NPROC.rawValue), &none)
            defer {
                setrlimit(__rlimit_resource_t(__RLIMIT_NPROC.rawValue), &saved)
                _ = laio_shim_set_thread_user_ids(0, 0, 0)
            }
            do {
                return .success(try submitBlockedReads(count, of: r, into: bytes, laio))
            } catch {
                return .failure(TestFailure("submit: \(error)"))
            }
        }
        let handles = try submitted.get()
        #expect(handles.count == count)
        // Only the two workers started with the context exist: no other could start.
        #expect(laio.poolWorkers?.live == 2)
        // Once the thread is root's again, poll tries the start again (more may start then).
        try release(handles, writing: w, laio)
    }
}
