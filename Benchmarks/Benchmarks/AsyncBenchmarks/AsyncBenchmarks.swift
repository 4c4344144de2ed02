// Context.perform (async/await) measured against the synchronous submit path of the same
// context, against SwiftNIO's NIOFileSystem (FileSystem.shared, a 4 KiB read at an offset of
// an open handle) and against NIOThreadPool.runIfActive, each side by side in one run:
//
// - cached 4 KiB preads, per call, with allocations (every backend);
// - cold random 4 KiB reads with 32 concurrent tasks (one benchmark that runs every variant
//   in each iteration, its pages dropped before each, and records the ratios);
// - a background round trip: a task awaits a pipe read that another thread's write
//   completes, with the latency from that write to the task running again;
// - what an idle context costs: threads, and the wake-ups of its threads while idle.
//
// RoundTrip.swift holds the pipe echo thread, IdleCost.swift the idle measurement.
#if canImport(Glibc)
import Glibc
#endif
import Benchmark
import LAIO
import NIOCore
import NIOFileSystem
import NIOPosix
import Synchronization

/// A warm 16 MiB file (the one PreadBenchmarks reads).
let cachedPath = "/var/tmp/laio-bench-cached.dat"
let cachedFile: Int32 = {
    let fd = open(cachedPath, O_RDWR | O_CREAT, 0o644)
    precondition(fd >= 0, "cannot open \(cachedPath)")
    var block = [UInt8](repeating: 0x61, count: 1 << 20)
    for i in 0..<16 { _ = block.withUnsafeMutableBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(i << 20)) } }
    var scratch = [UInt8](repeating: 0, count: 1 << 20)
    for i in 0..<16 { _ = scratch.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(i << 20)) } }
    return fd
}()

/// Cold random reads: a 1 GiB file of this target's own, so that other benchmarks dropping
/// or warming theirs do not change its state.
let coldPath = "/var/tmp/laio-async-cold.dat"
let coldReadsPerBatch = 8_000
let concurrentTasks = 32

/// A buffer handed to a closure that runs on another thread.
struct SharedBuffer: @unchecked Sendable {
    // @unchecked: each benchmark awaits its call before it issues the next, so only one
    // thread touches the memory at a time, and the memory lives until the process ends.
    let bytes: UnsafeMutableRawBufferPointer
}

/// An open NIOFileSystem handle, opened by a benchmark's setup and closed by its teardown.
final class OpenHandle: Sendable {
    let handle = Mutex<ReadFileHandle?>(nil)

    func open(_ path: String, in fileSystem: FileSystem) async throws {
        let opened = try await fileSystem.openFile(forReadingAt: FilePath(path))
        handle.withLock { $0 = opened }
    }

    func get() throws -> ReadFileHandle {
        guard let handle = handle.withLock({ $0 }) else { throw DemoError("the file is not open") }
        return handle
    }

    func close() async throws {
        if let open = handle.withLock({ handle in defer { handle = nil }; return handle }) { try await open.close() }
    }
}

/// The calls auto sent to the background so far (its statistics; nil on other backends).
func backgroundCalls(_ laio: Context) -> Int? {
    laio.statistics.map { $0.uringBackground + $0.threadsBackground }
}

let backgroundPercent = BenchmarkMetric.custom("background %", polarity: .prefersSmaller, useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    // 1,000 calls per sample: the harness runs each sample of an async benchmark in a Task
    // of its own (an allocation and a hop to another thread), which this spreads thin; the
    // synchronous rows use the same scale so that the rows compare.
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput, .mallocCountTotal],
                                           scalingFactor: .kilo, maxDuration: .seconds(2))
    // Never freed: the benchmarks' closures use it until the process ends.
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
    let shared = SharedBuffer(bytes: buffer)

    // What the harness itself costs per sample of an async benchmark (its allocations are
    // the floor of every async row's malloc count).
    Benchmark("async harness, empty loop") { benchmark async in
        for i in benchmark.scaledIterations { blackHole(i) }
    }

    Benchmark("pread(2) 4 KiB cached, in a task") { benchmark async in
        for i in benchmark.scaledIterations {
            blackHole(pread(cachedFile, buffer.baseAddress, 4096, off_t((i & 4095) * 4096)))
        }
    }

    // MARK: Cached: await perform against submit on the same context, in the same kind of loop

    let withBackground = Benchmark.Configuration(metrics: [.wallClock, .throughput, .mallocCountTotal, backgroundPercent],
                                                 scalingFactor: .kilo, maxDuration: .seconds(2))
    for kind in [BackendKind.auto, .uring, .blocking, .threads] {
        guard let laio = try? Context(backend: kind) else { continue }  // listed as absent in the output
        Benchmark("LAIO \(kind) submit pread 4 KiB cached, in a task", configuration: withBackground) { benchmark async throws in
            let before = backgroundCalls(laio)
            for i in benchmark.scaledIterations {
                if case .inProgress = try laio.submit(.pread(fd: cachedFile, buffer: buffer, offset: Int64((i & 4095) * 4096))) {
                    _ = try laio.poll(maximum: 1, timeout: nil)
                }
            }
            if let before, let after = backgroundCalls(laio) {
                benchmark.measurement(backgroundPercent, (after - before) * 100 / benchmark.scaledIterations.count)
            }
        }
        Benchmark("LAIO \(kind) await perform pread 4 KiB cached", configuration: withBackground) { benchmark async throws in
            let before = backgroundCalls(laio)
            for i in benchmark.scaledIterations {
                blackHole(try await laio.perform(.pread(fd: cachedFile, buffer: buffer, offset: Int64((i & 4095) * 4096))))
            }
            if let before, let after = backgroundCalls(laio) {
                benchmark.measurement(backgroundPercent, (after - before) * 100 / benchmark.scaledIterations.count)
            }
        }
    }

    // The same on Context.executor (a context of its own): the task hops onto it once per
    // sample, and a call that does not block never leaves it.
    if let laio = try? Context(backend: .auto) {
        let executor = laio.executor
        Benchmark("LAIO auto await perform pread 4 KiB cached, on Context.executor", configuration: withBackground) { benchmark async throws in
            let before = backgroundCalls(laio)
            try await withTaskExecutorPreference(executor) {
                for i in benchmark.scaledIterations {
                    blackHole(try await laio.perform(.pread(fd: cachedFile, buffer: buffer, offset: Int64((i & 4095) * 4096))))
                }
            }
            if let before, let after = backgroundCalls(laio) {
                benchmark.measurement(backgroundPercent, (after - before) * 100 / benchmark.scaledIterations.count)
            }
        }
    }

    // The harness divides the malloc count of a sample by its iterations, rounding down,
    // so the rows above only show that a call allocates less than once. One call per sample
    // counts exactly (the harness makes the sample's Task before it starts counting).
    let oneCall = Benchmark.Configuration(metrics: [.mallocCountTotal], scalingFactor: .one, maxDuration: .seconds(1),
                                          maxIterations: 10_000)
    for kind in [BackendKind.auto, .uring, .blocking] {
        guard let laio = try? Context(backend: kind) else { continue }
        Benchmark("LAIO \(kind) await perform pread 4 KiB cached, one call per sample", configuration: oneCall) { benchmark async throws in
            for i in benchmark.scaledIterations {
                blackHole(try await laio.perform(.pread(fd: cachedFile, buffer: buffer, offset: Int64((i & 4095) * 4096))))
            }
        }
    }

    // MARK: Cached: NIOFileSystem and NIOThreadPool

    let nioCached = OpenHandle()
    Benchmark("NIOFileSystem readChunk 4 KiB cached (FileSystem.shared)") { benchmark async throws in
        let handle = try nioCached.get()
        for i in benchmark.scaledIterations {
            let chunk = try await handle.readChunk(fromAbsoluteOffset: Int64((i & 4095) * 4096), length: .bytes(4096))
            blackHole(chunk.readableBytes)
        }
    } setup: {
        _ = cachedFile
        try await nioCached.open(cachedPath, in: .shared)
    } teardown: {
        try await nioCached.close()
    }

    // The same hop without NIOFileSystem's ByteBuffer: pread into the caller's buffer on the
    // thread pool FileSystem.shared uses.
    Benchmark("NIOThreadPool.runIfActive pread 4 KiB cached") { benchmark async throws in
        let pool = NIOThreadPool.singleton
        for i in benchmark.scaledIterations {
            let offset = off_t((i & 4095) * 4096)
            blackHole(try await pool.runIfActive { pread(cachedFile, shared.bytes.baseAddress, 4096, offset) })
        }
    }

    // MARK: Cold random reads, 32 concurrent

    coldReadBenchmark()

    // MARK: Background round trips and the idle context

    roundTripBenchmarks()
    idleCostBenchmark()
}
