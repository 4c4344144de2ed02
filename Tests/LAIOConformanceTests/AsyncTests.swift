#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Synchronization
import Testing

/// The backends whose cached reads complete inline (the thread pool hands every call to a
/// worker and answers within its lazy window, which a job count cannot pin down).
let inlineBackends = allBackends.filter { $0 != .threads }

/// `perform` on every backend: suspends only when a call blocks, resumes once, cancels
/// through LAIO, waits for room, ends on close.
@Suite("Async: perform")
struct AsyncTests {
    @Test("cached preads through perform never suspend the task", arguments: inlineBackends)
    func cachedReadsDoNotSuspend(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        let file = try makeFile("async-cached", bytes: 64 * 1024)
        defer { unlink(file.path) }
        let fd = open(file.path, O_RDONLY)
        defer { close(fd) }
        let executor = CountingExecutor()
        defer { executor.shutdown() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { buffer.deallocate() }
        // Warm the pages first (the first read of each may go to the background).
        for page in 0..<16 { _ = pread(fd, buffer.baseAddress, 4096, off_t(page * 4096)) }
        let sendable = UnsafeSendable(buffer)
        let (jobs, wrong) = try await Task(executorPreference: executor) { () async throws -> (Int, Int) in
            let before = executor.jobsEnqueued
            var wrong = 0
            for i in 0..<2_000 {
                let offset = (i % 16) * 4096
                let count = try await laio.perform(.pread(fd: fd, buffer: sendable.value, offset: Int64(offset)))
                if count != 4096 || Array(sendable.value.prefix(8)) != Array(file.content[offset..<offset + 8]) { wrong += 1 }
            }
            return (executor.jobsEnqueued - before, wrong)
        }.value
        #expect(jobs == 0, "\(jobs) jobs for 2,000 cached preads on \(kind)")
        #expect(wrong == 0)
        try expectNoCompletion(in: laio, within: .zero)
    }

    @Test("a read of an empty pipe suspends, and the write resumes it once", arguments: asynchronousBackends)
    func pipeReadResumes(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let executor = CountingExecutor()
        defer { executor.shutdown() }
        let buffer = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1))
        defer { buffer.value.deallocate() }
        let started = Atomic<Bool>(false)
        let task = Task(executorPreference: executor) { () async throws -> (Int, Int) in
            let before = executor.jobsEnqueued
            started.store(true, ordering: .releasing)
            let count = try await laio.perform(.read(fd: r, buffer: buffer.value))
            return (count, executor.jobsEnqueued - before)
        }
        while !started.load(ordering: .acquiring) { await Task.yield() }
        // The read may or may not be in the kernel yet: either way it must see these bytes.
        #expect(Glibc.write(w, "hello", 5) == 5)
        let (count, jobs) = try await failingIfHung("pipe read on \(kind)") { try await task.value }
        #expect(count == 5)
        #expect(Array(buffer.value.prefix(5)) == Array("hello".utf8))
        #expect(jobs <= 1, "resumed \(jobs) times")
        try expectNoCompletion(in: laio)
    }

    @Test("a background call suspends and resumes exactly once", arguments: asynchronousBackends)
    func backgroundResumesOnce(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        let executor = CountingExecutor()
        defer { executor.shutdown() }
        let jobs = try await Task(executorPreference: executor) { () async throws -> Int in
            let before = executor.jobsEnqueued
            _ = try await laio.perform(.nanosleep(.milliseconds(5)))
            return executor.jobsEnqueued - before
        }.value
        #expect(jobs == 1, "a sleep resumed its task \(jobs) times")
    }

    @Test("a task cancelled before perform does not start the call", arguments: allBackends)
    func cancelledBeforeStart(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let gate = Atomic<Bool>(false)
        let byte = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1))
        defer { byte.value.deallocate() }
        let task = Task { () async throws -> Int in
            while !gate.load(ordering: .acquiring) { await Task.yield() }
            return try await laio.perform(.write(fd: w, buffer: UnsafeRawBufferPointer(byte.value)))
        }
        task.cancel()
        gate.store(true, ordering: .releasing)
        await #expect(throws: Errno.canceled) { try await task.value }
        #expect(!isReadable(r), "the cancelled write wrote")
    }

    @Test("cancelling a waiting task cancels its call: ECANCELED, and the buffer is free", arguments: asynchronousBackends)
    func cancelWhileWaiting(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffer = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1))
        defer { buffer.value.deallocate() }
        let task = Task { () async throws -> Int in
            try await laio.perform(.read(fd: r, buffer: buffer.value))
        }
        // Until the call is outstanding, or the task has answered (it cannot have: no data).
        while laio.outstandingCount == 0 { await Task.yield() }
        task.cancel()
        _ = await failingIfHung("cancel on \(kind)") {
            await #expect(throws: Errno.canceled) { try await task.value }
        }
        #expect(laio.outstandingCount == 0)
        // The call is over: bytes written now stay in the pipe.
        #expect(Glibc.write(w, "late", 4) == 4)
        var byte: UInt8 = 0
        #expect(Glibc.read(r, &byte, 1) == 1 && byte == UInt8(ascii: "l"))
        try expectNoCompletion(in: laio)
    }

    @Test("cancellation racing completion: every task gets ECANCELED or its bytes", arguments: asynchronousBackends)
    func cancelRacesCompletion(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        let rounds = 200
        var outcomes = (canceled: 0, read: 0)
        for round in 0..<rounds {
            let (r, w) = try makePipe()
            defer { close(r); close(w) }
            let buffer = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1))
            defer { buffer.value.deallocate() }
            let task = Task { () async throws -> Int in
                try await laio.perform(.read(fd: r, buffer: buffer.value))
            }
            // Alternately before the call, while it waits and as its data arrives.
            if round % 3 == 1 { while laio.outstandingCount == 0 { await Task.yield() } }
            if round % 3 == 2 { _ = Glibc.write(w, "racing!!", 8) }
            task.cancel()
            if round % 3 != 2 { _ = Glibc.write(w, "racing!!", 8) }
            let result = await failingIfHung("cancel race on \(kind)") { await task.result }
            switch result {
            case .success(let count):
                #expect(count == 8 && Array(buffer.value) == Array("racing!!".utf8))
                outcomes.read += 1
            case .failure(let error):
                #expect(error as? Errno == .canceled)
                // Nothing was taken from the pipe.
                #expect(Glibc.read(r, buffer.value.baseAddress, 8) == 8)
                outcomes.canceled += 1
            }
        }
        #expect(outcomes.canceled + outcomes.read == rounds)
        #expect(laio.outstandingCount == 0)
        try expectNoCompletion(in: laio)
    }

    @Test("submit and perform on one context: poll sees only submitted calls", arguments: asynchronousBackends)
    func mixing(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        let (r1, w1) = try makePipe()
        let (r2, w2) = try makePipe()
        defer { close(r1); close(w1); close(r2); close(w2) }
        let polled = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
        let awaited = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1))
        defer { polled.deallocate(); awaited.value.deallocate() }
        let handle = try submitBlockedRead(laio, fd: r1, into: polled)
        let task = Task { () async throws -> Int in try await laio.perform(.read(fd: r2, buffer: awaited.value)) }
        while laio.outstandingCount < 2 { await Task.yield() }
        #expect(Glibc.write(w2, "awaited", 7) == 7)
        #expect(try await failingIfHung("mixed perform on \(kind)") { try await task.value } == 7)
        // Polling while the awaited call finished: it is not there.
        #expect(try laio.poll(maximum: 8, timeout: .zero).isEmpty)
        #expect(Glibc.write(w1, "polled", 6) == 6)
        #expect(try awaitCompletion(of: handle, in: laio) == .success(6))
        #expect(Array(polled.prefix(6)) == Array("polled".utf8))
        #expect(Array(awaited.value.prefix(7)) == Array("awaited".utf8))
    }

    @Test("at capacity, perform waits for room instead of throwing EAGAIN", arguments: asynchronousBackends)
    func waitsForRoom(_ kind: BackendKind) async throws {
        let capacity = 4
        let laio = try Context(backend: kind, threads: ThreadPoolSettings(workers: 8, capacity: capacity),
                               uring: UringSettings(capacity: capacity))
        let tasks = 24
        var pipes: [(Int32, Int32)] = []
        for _ in 0..<tasks { pipes.append(try makePipe()) }
        defer { for (r, w) in pipes { close(r); close(w) } }
        let buffers = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 8 * tasks, alignment: 1))
        defer { buffers.value.deallocate() }
        let reads = pipes.map(\.0)
        let results = try await failingIfHung("capacity on \(kind)") {
            try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for i in 0..<tasks {
                    group.addTask {
                        let buffer = UnsafeMutableRawBufferPointer(rebasing: buffers.value[(8 * i)..<(8 * i + 8)])
                        return (i, try await laio.perform(.read(fd: reads[i], buffer: buffer)))
                    }
                }
                // The calls fill the capacity; the others wait. Feed them all.
                while laio.outstandingCount < capacity { await Task.yield() }
                #expect(laio.outstandingCount <= capacity + 1)
                for (i, (_, w)) in pipes.enumerated() {
                    var byte = UInt8(i)
                    #expect(Glibc.write(w, &byte, 1) == 1)
                }
                var results: [Int: Int] = [:]
                for try await (i, count) in group { results[i] = count }
                return results
            }
        }
        #expect(results.count == tasks && results.values.allSatisfy { $0 == 1 })
        for i in 0..<tasks { #expect(buffers.value[8 * i] == UInt8(i)) }
        #expect(laio.outstandingCount == 0)
    }

    @Test("a task waiting for room is cancelled: ECANCELED, and the calls ahead of it go on", arguments: asynchronousBackends)
    func cancelWhileWaitingForRoom(_ kind: BackendKind) async throws {
        let capacity = 2
        let laio = try Context(backend: kind, threads: ThreadPoolSettings(workers: 4, capacity: capacity),
                               uring: UringSettings(capacity: capacity))
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffers = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 3, alignment: 1))
        defer { buffers.value.deallocate() }
        func read(_ i: Int) -> Task<Int, any Error> {
            Task { try await laio.perform(.read(fd: r, buffer: UnsafeMutableRawBufferPointer(rebasing: buffers.value[i..<i + 1]))) }
        }
        let first = read(0), second = read(1)
        while laio.outstandingCount < capacity { await Task.yield() }
        let third = read(2)
        // Cancelled before or after it has queued for room: either way ECANCELED, and nothing read.
        third.cancel()
        _ = await failingIfHung("cancel of a wait for room on \(kind)") {
            await #expect(throws: Errno.canceled) { try await third.value }
        }
        #expect(Glibc.write(w, "ab", 2) == 2)
        let counts = try await failingIfHung("the calls ahead on \(kind)") { [try await first.value, try await second.value] }
        #expect(counts == [1, 1])
        #expect(Set([buffers.value[0], buffers.value[1]]) == Set(Array("ab".utf8)))
        #expect(laio.outstandingCount == 0)
    }

    /// Regression: on a ring with fewer slots than the context's queue has credits (kernels
    /// without IORING_FEAT_NODROP; here a test-only limit of one slot), submit answers EAGAIN
    /// while the queue still has room, and perform looked again after Task.yield() without
    /// ever checking for cancellation: a cancelled task spun for as long as the slot stayed
    /// taken. The waiting task runs on a counting executor: each Task.yield() is a job, so
    /// once it has had three jobs it is known to be in that loop, whatever the machine's speed.
    @Test("perform-yield-cancel (issue 27): a task that finds the ring full while the queue has room ends when cancelled",
          arguments: asynchronousBackends.filter { $0 != .threads })
    func cancelWhileRingIsFull(_ kind: BackendKind) async throws {
        var uring = UringSettings()
        uring.slotLimitForTesting = 1
        let laio = try Context(backend: kind, uring: uring)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let (r2, w2) = try makePipe()
        defer { close(r2); close(w2) }
        let buffers = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 2, alignment: 1))
        defer { buffers.value.deallocate() }
        let first = Task { try await laio.perform(.read(fd: r, buffer: UnsafeMutableRawBufferPointer(rebasing: buffers.value[0..<1]))) }
        while laio.outstandingCount < 1 { await Task.yield() }
        let executor = CountingExecutor()
        defer { executor.shutdown() }
        let second = Task(executorPreference: executor) {
            try await laio.perform(.read(fd: r2, buffer: UnsafeMutableRawBufferPointer(rebasing: buffers.value[1..<2])))
        }
        // Its first job starts it; nothing else suspends it before it has a slot (or, on
        // `auto` without io_uring, before its read goes to the pool and suspends once).
        while executor.jobsEnqueued < 3 && laio.outstandingCount < 2 { await Task.yield() }
        second.cancel()
        _ = await failingIfHung(after: .seconds(60), "a cancelled perform looping for a slot on \(kind)") {
            await #expect(throws: Errno.canceled) { try await second.value }
        }
        #expect(Glibc.write(w, "a", 1) == 1)
        let count = try await failingIfHung("the call holding the slot on \(kind)") { try await first.value }
        #expect(count == 1)
        laio.close()
    }

    @Test("close(fd) in a cancelled task still closes the descriptor", arguments: allBackends)
    func closeIgnoresCancellation(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        // A socket pair: the peer reads end of file once the closed end is gone (a check a
        // reused descriptor number, another test's, cannot fool).
        var pair: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { close(pair[1]) }
        let closing = pair[0]
        let gate = Atomic<Bool>(false)
        let task = Task { () async throws -> Void in
            while !gate.load(ordering: .acquiring) { await Task.yield() }
            try await laio.close(FileDescriptor(rawValue: closing))
        }
        task.cancel()
        gate.store(true, ordering: .releasing)
        try await task.value
        var byte: UInt8 = 0
        #expect(recv(pair[1], &byte, 1, Int32(MSG_DONTWAIT)) == 0, "the descriptor is still open")
    }

    @Test("close ends awaited calls and tasks waiting for room; none hangs", arguments: asynchronousBackends)
    func closeEndsEveryWait(_ kind: BackendKind) async throws {
        let capacity = 3
        let laio = try Context(backend: kind, threads: ThreadPoolSettings(workers: 8, capacity: capacity),
                               uring: UringSettings(capacity: capacity))
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let tasks = 10
        let buffers = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 8 * tasks, alignment: 1))
        defer { buffers.value.deallocate() }
        let errors = await failingIfHung("close on \(kind)") {
            await withTaskGroup(of: Result<Int, Errno>.self) { group in
                for i in 0..<tasks {
                    group.addTask {
                        let buffer = UnsafeMutableRawBufferPointer(rebasing: buffers.value[(8 * i)..<(8 * i + 8)])
                        do throws(Errno) {
                            return .success(try await laio.perform(.read(fd: r, buffer: buffer)))
                        } catch {
                            return .failure(error)
                        }
                    }
                }
                while laio.outstandingCount < capacity { await Task.yield() }
                laio.close()
                var errors: [Result<Int, Errno>] = []
                for await result in group { errors.append(result) }
                return errors
            }
        }
        #expect(errors.count == tasks)
        for result in errors {
            #expect(result == .failure(.canceled) || result == .failure(.badFileDescriptor), "\(result)")
        }
        #expect(errors.contains(.failure(.canceled)))
        // Nothing reads the pipe any more.
        #expect(Glibc.write(w, "after", 5) == 5)
        var bytes = [UInt8](repeating: 0, count: 5)
        #expect(Glibc.read(r, &bytes, 5) == 5)
        await #expect(throws: Errno.badFileDescriptor) { try await laio.perform(.nanosleep(.zero)) }
    }

    @Test("2,000 tasks (as many at once as descriptors allow) doing pipe round trips and file reads: every result right", arguments: asynchronousBackends)
    func thousandsOfTasks(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        let file = try makeFile("async-many", bytes: 256 * 1024)
        defer { unlink(file.path) }
        let fd = open(file.path, O_RDONLY)
        defer { close(fd) }
        // Half of the file's pages cold.
        _ = posix_fadvise(fd, 128 * 1024, 0, POSIX_FADV_DONTNEED)
        let tasks = 2_000
        // Each running task holds a pipe: as many at once as the descriptor limit leaves
        // room for (raised to its hard limit first; 1,024 by default, 20,000 on the machine
        // these figures come from), so on a machine with the default all 2,000 still run,
        // some hundreds at a time.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        // A sixteenth of what is left above 1,024: the test's three backends run at once, beside
        // the rest of the suite, and each task holds two descriptors.
        let atOnce = max(16, min(tasks, (Int(clamping: limit.rlim_cur) - 1_024) / 16))
        let content = file.content
        let wrong = try await failingIfHung("2,000 tasks on \(kind)") {
            try await withThrowingTaskGroup(of: Int.self) { group in
                var total = 0
                for i in 0..<tasks {
                    if i >= atOnce, let done = try await group.next() { total += done }
                    group.addTask {
                        var wrong = 0
                        let (r, w) = try makePipe()
                        defer { close(r); close(w) }
                        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
                        defer { buffer.deallocate() }
                        let message = Array("task \(i)".utf8)
                        // The write comes from another task, after the read may have suspended.
                        async let written = Task { () async throws -> Int in
                            await Task.yield()
                            return message.withUnsafeBytes { Glibc.write(w, $0.baseAddress, $0.count) }
                        }.value
                        let count = try await laio.perform(.read(fd: r, buffer: buffer))
                        if try await written != message.count || count != message.count
                            || Array(buffer.prefix(count)) != message { wrong += 1 }
                        let offset = (i * 4096) % (256 * 1024)
                        let read = try await laio.perform(.pread(fd: fd, buffer: buffer, offset: Int64(offset)))
                        if read != 4096 || Array(buffer.prefix(64)) != Array(content[offset..<offset + 64]) { wrong += 1 }
                        return wrong
                    }
                }
                return try await group.reduce(total, +)
            }
        }
        #expect(wrong == 0)
        #expect(laio.outstandingCount == 0)
        try expectNoCompletion(in: laio)
    }

    @Test("tasks whose every job runs on a new thread that then exits", arguments: allBackends)
    func threadsComeAndGo(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        let file = try makeFile("async-threads", bytes: 64 * 1024)
        defer { unlink(file.path) }
        let fd = open(file.path, O_RDONLY)
        defer { close(fd) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        let executor = ThreadPerJobExecutor()
        let content = file.content
        let tasks = 40
        let wrong = try await failingIfHung("thread per job on \(kind)") {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<tasks {
                    group.addTask(executorPreference: executor) {
                        var wrong = 0
                        let (r, w) = try makePipe()
                        defer { close(r); close(w) }
                        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
                        defer { buffer.deallocate() }
                        for round in 0..<4 {
                            let offset = ((i * 4 + round) * 4096) % (64 * 1024)
                            // A cold or cached read, then a pipe read the next job's thread completes.
                            let read = try await laio.perform(.pread(fd: fd, buffer: buffer, offset: Int64(offset)))
                            if read != 4096 || Array(buffer.prefix(32)) != Array(content[offset..<offset + 32]) { wrong += 1 }
                            async let written = Task(executorPreference: executor) { () -> Int in
                                Glibc.write(w, "round", 5)
                            }.value
                            let count = try await laio.perform(.read(fd: r, buffer: buffer))
                            if await written != 5 || count != 5 || Array(buffer.prefix(5)) != Array("round".utf8) { wrong += 1 }
                        }
                        return wrong
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        #expect(wrong == 0)
        #expect(executor.jobsEnqueued > tasks)
        #expect(laio.outstandingCount == 0)
    }
}
