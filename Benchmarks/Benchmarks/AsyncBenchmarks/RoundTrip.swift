// A background round trip: the task writes a byte that wakes an echo thread, then awaits
// a read of the echo thread's answer on another pipe. The echo thread answers
// `echoDelay` after it wakes (spinning), so that the read has gone to the background on
// every backend (threads' lazy window is 10 µs) before the answer completes it; without
// the delay the echo, woken on the same core, often answered before the read started and
// the read completed synchronously (auto's statistics: 1 % background). Every row,
// the floor included, carries the same delay. The same round with NIOThreadPool.runIfActive doing the read
// (a blocking read on a pool thread), and between two plain threads as the floor.
//
// Two figures per row: the wall clock per round trip, and "write to resume", the time from
// just before the echo thread's write to the awaiting task running again (the resumption
// latency of a background call; for the plain threads, to the reader's read returning).
#if canImport(Glibc)
import Glibc
#endif
import Benchmark
import LAIO
import NIOCore
import NIOPosix
import Synchronization

/// The other thread of a round trip: it waits for a byte on one pipe, notes the time and
/// writes the byte to another, for as long as the process lives.
final class Echo: Sendable {
    /// The task writes here to wake the echo thread.
    let wakeWriter: Int32
    private let wakeReader: Int32
    /// The task reads the echo's answer here.
    let answerReader: Int32
    private let answerWriter: Int32
    /// CLOCK_MONOTONIC just before the last answer was written.
    let answeredAt = Atomic<Int64>(0)

    init() {
        var wake: [Int32] = [0, 0], answer: [Int32] = [0, 0]
        precondition(pipe(&wake) == 0 && pipe(&answer) == 0, "pipe: \(errno)")
        (wakeReader, wakeWriter) = (wake[0], wake[1])
        (answerReader, answerWriter) = (answer[0], answer[1])
        var thread = pthread_t()
        // Retained for good: the thread runs until the process ends and uses the echo
        // through this reference.
        let me = Unmanaged.passRetained(self).toOpaque()
        precondition(pthread_create(&thread, nil, { argument in
            Unmanaged<Echo>.fromOpaque(argument!).takeUnretainedValue().run()
            return nil
        }, me) == 0, "cannot start the echo thread")
        pthread_detach(thread)
    }

    private func run() {
        var byte: UInt8 = 0
        while read(wakeReader, &byte, 1) == 1 {
            let answerAt = monotonicNanoseconds() + echoDelay
            while monotonicNanoseconds() < answerAt {}
            answeredAt.store(monotonicNanoseconds(), ordering: .releasing)
            _ = write(answerWriter, &byte, 1)
        }
    }

    /// Wakes the echo thread.
    func ping() {
        var byte: UInt8 = 1
        precondition(write(wakeWriter, &byte, 1) == 1, "write: \(errno)")
    }

    /// Nanoseconds from just before the last answer was written until now.
    func sinceAnswer() -> Int {
        Int(monotonicNanoseconds() - answeredAt.load(ordering: .acquiring))
    }
}

/// How long the echo thread waits before it answers, in nanoseconds.
let echoDelay: Int64 = 50_000

let writeToResume = BenchmarkMetric.custom("write to resume (ns)", polarity: .prefersSmaller, useScalingFactor: false)

func roundTripBenchmarks() {
    let echo = Echo()
    // Never freed: the round trips' closures use it until the process ends.
    let byte = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
    let shared = SharedBuffer(bytes: byte)
    // One sample is 1,000 round trips (see the default configuration); each round trip
    // adds one write-to-resume figure.
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal, writeToResume, backgroundPercent],
        scalingFactor: .kilo, maxDuration: .seconds(3))

    Benchmark("round trip: two threads, blocking read (floor)", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            echo.ping()
            precondition(read(echo.answerReader, byte.baseAddress, 1) == 1)
            benchmark.measurement(writeToResume, echo.sinceAnswer())
        }
    }

    for kind in [BackendKind.auto, .uring, .threads] {
        guard let laio = try? Context(backend: kind) else { continue }
        Benchmark("round trip: LAIO \(kind) await perform(read) of a pipe", configuration: configuration) { benchmark async throws in
            let before = backgroundCalls(laio)
            for _ in benchmark.scaledIterations {
                echo.ping()
                let n = try await laio.perform(.read(fd: echo.answerReader, buffer: byte))
                benchmark.measurement(writeToResume, echo.sinceAnswer())
                precondition(n == 1, "read \(n) bytes")
            }
            if let before, let after = backgroundCalls(laio) {
                benchmark.measurement(backgroundPercent, (after - before) * 100 / benchmark.scaledIterations.count)
            }
        }
    }

    // The same task on Context.executor (a context of its own for each row).
    for kind in [BackendKind.auto, .uring, .threads] {
        guard let laio = try? Context(backend: kind) else { continue }
        let executor = laio.executor
        Benchmark("round trip: LAIO \(kind) await perform(read) of a pipe, on Context.executor", configuration: configuration) { benchmark async throws in
            let before = backgroundCalls(laio)
            try await withTaskExecutorPreference(executor) {
                for _ in benchmark.scaledIterations {
                    echo.ping()
                    let n = try await laio.perform(.read(fd: echo.answerReader, buffer: byte))
                    benchmark.measurement(writeToResume, echo.sinceAnswer())
                    precondition(n == 1, "read \(n) bytes")
                }
            }
            if let before, let after = backgroundCalls(laio) {
                benchmark.measurement(backgroundPercent, (after - before) * 100 / benchmark.scaledIterations.count)
            }
        }
    }

    // An actor on a SwiftNIO event loop (a serial executor) awaiting perform: resumed on its loop.
    if let laio = try? Context(backend: .auto) {
        let reader = LoopReader(loop: loopGroup.next(), laio: laio, echo: echo, byte: shared)
        Benchmark("round trip: LAIO auto await perform(read) of a pipe, actor on a NIO EventLoop", configuration: configuration) { benchmark async throws in
            let latencies = try await reader.roundTrips(benchmark.scaledIterations.count)
            for latency in latencies { benchmark.measurement(writeToResume, latency) }
        }
    }

    Benchmark("round trip: NIOThreadPool.runIfActive { read } of a pipe", configuration: configuration) { benchmark async throws in
        let pool = NIOThreadPool.singleton
        let reader = echo.answerReader
        for _ in benchmark.scaledIterations {
            echo.ping()
            let n = try await pool.runIfActive { read(reader, shared.bytes.baseAddress, 1) }
            benchmark.measurement(writeToResume, echo.sinceAnswer())
            precondition(n == 1, "read \(n) bytes")
        }
    }
}

/// The event loop the actor below lives on: one thread of its own.
let loopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

/// An actor whose executor is a SwiftNIO event loop; it runs round trips through `perform`.
actor LoopReader {
    let loop: any EventLoop
    let laio: Context
    let echo: Echo
    let byte: SharedBuffer

    init(loop: any EventLoop, laio: Context, echo: Echo, byte: SharedBuffer) {
        self.loop = loop
        self.laio = laio
        self.echo = echo
        self.byte = byte
    }

    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.executor.asUnownedSerialExecutor() }

    /// `count` round trips; each one's write-to-resume latency (one array per sample).
    func roundTrips(_ count: Int) async throws -> [Int] {
        var latencies: [Int] = []
        latencies.reserveCapacity(count)
        for _ in 0..<count {
            loop.preconditionInEventLoop()
            echo.ping()
            let n = try await laio.perform(.read(fd: echo.answerReader, buffer: byte.bytes))
            latencies.append(echo.sinceAnswer())
            precondition(n == 1, "read \(n) bytes")
        }
        loop.preconditionInEventLoop()
        return latencies
    }
}
