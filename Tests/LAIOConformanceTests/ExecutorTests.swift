#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Synchronization
import Testing

/// `Context.executor` on every backend: tasks resumed once, on its thread; cancellation;
/// close with tasks waiting; many tasks; an actor on it; tasks that move on and off it.
@Suite("Async: Context.executor")
struct ExecutorTests {
    @Test("a background call resumes its task once, on the executor's thread", arguments: asynchronousBackends)
    func resumesOnceOnItsThread(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        defer { laio.close() }
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffer = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1))
        defer { buffer.value.deallocate() }
        let executor = laio.executor
        #expect(laio.executor === executor, "one executor per context")
        #expect(!executor.isCurrentThread)
        let started = Atomic<Bool>(false)
        let task = Task(executorPreference: executor) { () async throws -> (count: Int, jobs: Int, same: Bool, on: Bool) in
            let thread = pthread_self()
            let before = executor.jobsEnqueued
            started.store(true, ordering: .releasing)
            let count = try await laio.perform(.read(fd: r, buffer: buffer.value))
            return (count, executor.jobsEnqueued - before, pthread_equal(thread, pthread_self()) != 0,
                    executor.isCurrentThread)
        }
        while !started.load(ordering: .acquiring) { await Task.yield() }
        // The read is in flight (not answered at once for want of data) before data comes.
        while laio.outstandingCount == 0 { await Task.yield() }
        #expect(Glibc.write(w, "hello", 5) == 5)
        let outcome = try await failingIfHung("executor pipe read on \(kind)") { try await task.value }
        #expect(outcome.count == 5)
        #expect(Array(buffer.value.prefix(5)) == Array("hello".utf8))
        #expect(outcome.jobs == 1, "resumed \(outcome.jobs) times")
        #expect(outcome.same && outcome.on, "resumed off the executor's thread")
        let sleep = try await Task(executorPreference: executor) { () async throws -> (Int, Bool) in
            let before = executor.jobsEnqueued
            _ = try await laio.perform(.nanosleep(.milliseconds(2)))
            return (executor.jobsEnqueued - before, executor.isCurrentThread)
        }.value
        #expect(sleep.0 == 1, "a sleep resumed its task \(sleep.0) times")
        #expect(sleep.1)
        #expect(laio.outstandingCount == 0)
        try expectNoCompletion(in: laio)
    }

    @Test("cached preads on the executor never suspend", arguments: inlineBackends)
    func cachedReadsDoNotSuspend(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        defer { laio.close() }
        let file = try makeFile("executor-cached", bytes: 64 * 1024)
        defer { unlink(file.path) }
        let fd = open(file.path, O_RDONLY)
        defer { close(fd) }
        let buffer = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096))
        defer { buffer.value.deallocate() }
        for page in 0..<16 { _ = pread(fd, buffer.value.baseAddress, 4096, off_t(page * 4096)) }
        let executor = laio.executor
        let content = file.content
        let (jobs, wrong) = try await Task(executorPreference: executor) { () async throws -> (Int, Int) in
            let before = executor.jobsEnqueued
            var wrong = 0
            for i in 0..<2_000 {
                let offset = (i % 16) * 4096
                let count = try await laio.perform(.pread(fd: fd, buffer: buffer.value, offset: Int64(offset)))
                if count != 4096 || Array(buffer.value.prefix(8)) != Array(content[offset..<offset + 8]) { wrong += 1 }
            }
            return (executor.jobsEnqueued - before, wrong)
        }.value
        // As io_uring's own test allows (99 % synchronous): a rare page-lock race may send
        // a cached read to the background; a job for every read is the defect.
        #expect(jobs <= 20, "\(jobs) jobs for 2,000 cached preads on \(kind)")
        #expect(wrong == 0)
    }

    @Test("cancelling a task on the executor that awaits a blocked call: ECANCELED, on its thread", arguments: asynchronousBackends)
    func cancel(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        defer { laio.close() }
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffer = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1))
        defer { buffer.value.deallocate() }
        let executor = laio.executor
        let task = Task(executorPreference: executor) { () async -> (Result<Int, Errno>, Bool) in
            do throws(Errno) {
                return (.success(try await laio.perform(.read(fd: r, buffer: buffer.value))), executor.isCurrentThread)
            } catch {
                return (.failure(error), executor.isCurrentThread)
            }
        }
        while laio.outstandingCount == 0 { await Task.yield() }
        task.cancel()
        let (result, onThread) = await failingIfHung("executor cancel on \(kind)") { await task.value }
        #expect(result == .failure(.canceled))
        #expect(onThread)
        #expect(laio.outstandingCount == 0)
        // The call is over: bytes written now stay in the pipe.
        #expect(Glibc.write(w, "late", 4) == 4)
        var byte: UInt8 = 0
        #expect(Glibc.read(r, &byte, 1) == 1 && byte == UInt8(ascii: "l"))
        try expectNoCompletion(in: laio)
    }

    /// Cancels at every moment of the executor's loop. A cancel that came between its
    /// service and its sleep used to be lost (on a pool, whose worker may need its cancel
    /// asked again), and the task hung; that window is narrow, and this test did not hit it
    /// in five runs of the old code: it guards the path, it does not prove the fix.
    @Test("cancels racing the executor's sleep, 300 times: each task ends, ECANCELED", arguments: asynchronousBackends)
    func cancelsRacingTheSleep(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        defer { laio.close() }
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffer = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1))
        defer { buffer.value.deallocate() }
        let executor = laio.executor
        try await failingIfHung("cancels racing the executor on \(kind)") {
            for round in 0..<300 {
                let task = Task(executorPreference: executor) { () async -> Result<Int, Errno> in
                    do throws(Errno) {
                        return .success(try await laio.perform(.read(fd: r, buffer: buffer.value)))
                    } catch {
                        return .failure(error)
                    }
                }
                // Every third round at once, the others once the read is in flight.
                if round % 3 != 0 { while laio.outstandingCount == 0 { await Task.yield() } }
                task.cancel()
                let result = await task.value
                #expect(result == .failure(.canceled), "round \(round): \(result)")
                try #require(laio.outstandingCount == 0)
            }
        }
        try expectNoCompletion(in: laio)
    }

    @Test("close with tasks waiting on the executor: each ends once with ECANCELED; later jobs still run", arguments: asynchronousBackends)
    func closeWithTasksWaiting(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let tasks = 16
        let buffers = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 8 * tasks, alignment: 1))
        defer { buffers.value.deallocate() }
        let executor = laio.executor
        let results = await failingIfHung("executor close on \(kind)") {
            await withTaskGroup(of: (Result<Int, Errno>, Bool).self) { group in
                for i in 0..<tasks {
                    group.addTask(executorPreference: executor) {
                        let buffer = UnsafeMutableRawBufferPointer(rebasing: buffers.value[(8 * i)..<(8 * i + 8)])
                        do throws(Errno) {
                            return (.success(try await laio.perform(.read(fd: r, buffer: buffer))), executor.isCurrentThread)
                        } catch {
                            return (.failure(error), executor.isCurrentThread)
                        }
                    }
                }
                while laio.outstandingCount < tasks { await Task.yield() }
                laio.close()
                var results: [(Result<Int, Errno>, Bool)] = []
                for await result in group { results.append(result) }
                return results
            }
        }
        #expect(results.count == tasks)
        for (result, onThread) in results {
            #expect(result == .failure(.canceled), "\(result)")
            #expect(onThread)
        }
        // Nothing reads the pipe any more.
        #expect(Glibc.write(w, "after", 5) == 5)
        var bytes = [UInt8](repeating: 0, count: 5)
        #expect(Glibc.read(r, &bytes, 5) == 5)
        // Jobs enqueued after the close run (on a thread of the executor's), in order.
        let order = await failingIfHung("a job after close on \(kind)") {
            await withTaskExecutorPreference(executor) { () async -> [Int] in
                var order: [Int] = []
                for i in 0..<3 {
                    await Task.yield()
                    if executor.isCurrentThread { order.append(i) }
                }
                return order
            }
        }
        #expect(order == [0, 1, 2])
        await #expect(throws: Errno.badFileDescriptor) {
            try await withTaskExecutorPreference(executor) { try await laio.perform(.nanosleep(.zero)) }
        }
    }

    @Test("a thousand tasks on the executor: sleeps and cold reads, every result right, every resume on its thread",
          arguments: asynchronousBackends)
    func thousandTasks(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        defer { laio.close() }
        let file = try makeFile("executor-many", bytes: 256 * 1024)
        defer { unlink(file.path) }
        let fd = open(file.path, O_RDONLY)
        defer { close(fd) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        let executor = laio.executor
        let content = file.content
        let tasks = 1_000
        let wrong = try await failingIfHung("a thousand tasks on \(kind)") {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<tasks {
                    group.addTask(executorPreference: executor) {
                        var wrong = executor.isCurrentThread ? 0 : 1
                        _ = try await laio.perform(.nanosleep(.microseconds(100 * (i % 7))))
                        if !executor.isCurrentThread { wrong += 1 }
                        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
                        defer { buffer.deallocate() }
                        let offset = (i * 4096) % (256 * 1024)
                        let read = try await laio.perform(.pread(fd: fd, buffer: buffer, offset: Int64(offset)))
                        if read != 4096 || Array(buffer.prefix(64)) != Array(content[offset..<offset + 64]) { wrong += 1 }
                        if !executor.isCurrentThread { wrong += 1 }
                        return wrong
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        #expect(wrong == 0)
        #expect(laio.outstandingCount == 0)
        try expectNoCompletion(in: laio)
    }

    @Test("an actor on the executor awaits perform and stays isolated", arguments: allBackends)
    func actorOnTheExecutor(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        defer { laio.close() }
        let tally = Tally(laio)
        let callers = 50
        let rounds = 10
        try await failingIfHung("an actor on the executor on \(kind)") {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<callers {
                    group.addTask {
                        for _ in 0..<rounds { try await tally.sleepAndCount() }
                    }
                }
                try await group.waitForAll()
            }
        }
        let (count, offThread) = await tally.totals
        #expect(count == callers * rounds)
        #expect(offThread == 0, "\(offThread) actor jobs ran off the executor's thread")
    }

    @Test("tasks that move between the executor and the global one are resumed where they run", arguments: allBackends)
    func movingTasks(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        defer { laio.close() }
        let executor = laio.executor
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let tasks = 50
        let wrong = try await failingIfHung("moving tasks on \(kind)") {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<tasks {
                    group.addTask {
                        var wrong = 0
                        let sleep = Operation.nanosleep(.microseconds(200 * (i % 5)))
                        // On the global executor, while the context's executor reaps.
                        _ = try await laio.perform(sleep)
                        if executor.isCurrentThread { wrong += 1 }
                        let inside = try await withTaskExecutorPreference(executor) { () async throws -> Int in
                            var wrong = executor.isCurrentThread ? 0 : 1
                            _ = try await laio.perform(sleep)
                            if !executor.isCurrentThread { wrong += 1 }
                            return wrong
                        }
                        wrong += inside
                        _ = try await laio.perform(sleep)
                        if executor.isCurrentThread { wrong += 1 }
                        return wrong
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        #expect(wrong == 0)
        guard kind != .blocking else { return }
        // A task on the global executor awaiting a call in the ring (or on a worker) while
        // the executor is the context's reaper: resumed once, with its bytes.
        let buffer = UnsafeSendable(UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1))
        defer { buffer.value.deallocate() }
        let reader = Task { () async throws -> (Int, Bool) in
            (try await laio.perform(.read(fd: r, buffer: buffer.value)), executor.isCurrentThread)
        }
        while laio.outstandingCount == 0 { await Task.yield() }
        #expect(Glibc.write(w, "global", 6) == 6)
        let (count, onExecutor) = try await failingIfHung("a global task on \(kind)") { try await reader.value }
        #expect(count == 6 && Array(buffer.value.prefix(6)) == Array("global".utf8))
        #expect(!onExecutor)
        #expect(laio.outstandingCount == 0)
        try expectNoCompletion(in: laio)
    }
}

/// An actor that lives on its context's executor.
private actor Tally {
    let laio: Context
    private var count = 0
    private var offThread = 0

    init(_ laio: Context) { self.laio = laio }

    nonisolated var unownedExecutor: UnownedSerialExecutor { laio.executor.asUnownedSerialExecutor() }

    func sleepAndCount() async throws {
        if !laio.executor.isCurrentThread { offThread += 1 }
        _ = try await laio.perform(.nanosleep(.microseconds(50)))
        if !laio.executor.isCurrentThread { offThread += 1 }
        count += 1
    }

    var totals: (Int, Int) { (count, offThread) }
}
