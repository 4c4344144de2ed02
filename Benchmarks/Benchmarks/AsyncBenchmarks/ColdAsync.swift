// Cold random 4 KiB reads with 32 concurrent tasks: `await perform` on auto against
// NIOFileSystem (FileSystem.shared, and a FileSystem on a pool of 32 threads) and against
// auto's synchronous submit/poll loop with 32 in flight (ColdReads.swift's, the loop of
// ColdReadBenchmarks). Every variant runs in every iteration, on the same offsets, after
// the file's pages are dropped, in an order that rotates from one iteration to the next;
// the ratios are taken within the iteration.
#if canImport(Glibc)
import Glibc
#endif
import Benchmark
import LAIO
import NIOCore
import NIOFileSystem
import NIOPosix
import Synchronization

/// The next offset a task takes.
final class NextRead: Sendable {
    let index = Atomic<Int>(0)
}

/// `offsets.count` reads of 4 KiB by `tasks` concurrent tasks, each with a buffer of its own;
/// returns reads per second. Every read must return 4 KiB.
/// With `executor`, the tasks prefer it (`Context.executor`).
func concurrentReads(tasks: Int, offsets: [Int64], on executor: (any TaskExecutor)? = nil,
                     _ read: @escaping @Sendable (Int64, UnsafeMutableRawBufferPointer) async throws -> Int) async throws -> Double {
    let next = NextRead()
    let start = monotonicNanoseconds()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<tasks {
            group.addTask(executorPreference: executor) {
                // Freed after the task's last read has returned (perform and readChunk
                // return only once the read is over).
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
                defer { buffer.deallocate() }
                while true {
                    let i = next.index.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard i < offsets.count else { return }
                    let n = try await read(offsets[i], buffer)
                    guard n == 4096 else { throw DemoError("read \(n) bytes at \(offsets[i]), not 4096") }
                }
            }
        }
        try await group.waitForAll()
    }
    return Double(offsets.count) * 1e9 / Double(monotonicNanoseconds() - start)
}

/// The process's context switches so far, voluntary and not (getrusage).
func processContextSwitches() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_nvcsw + usage.ru_nivcsw
}

func metric(_ name: String) -> BenchmarkMetric {
    .custom(name, polarity: .prefersLarger, useScalingFactor: false)
}

/// One variant of the cold benchmark: its name (the metric's) and one batch of reads.
struct ColdVariant {
    let name: String
    let run: (_ offsets: [Int64]) async throws -> Double
}

func coldReadBenchmark() {
    guard let file = try? TestFile(path: coldPath, size: 1024 << 20), let fd = try? file.open() else {
        print("AsyncBenchmarks: cannot create \(coldPath); the cold reads are not measured")
        return
    }
    _ = posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM)  // as fio does for random reads: no readahead

    let nioShared = OpenHandle()
    let nio32 = OpenHandle()
    let pool32 = NIOThreadPool(numberOfThreads: concurrentTasks)
    var variants: [ColdVariant] = []
    if let auto = try? Context(backend: .auto) {
        variants.append(ColdVariant(name: "auto perform, 32 tasks") { offsets in
            try await concurrentReads(tasks: concurrentTasks, offsets: offsets) { offset, buffer in
                try await auto.perform(.pread(fd: fd, buffer: buffer, offset: offset))
            }
        })
        variants.append(ColdVariant(name: "auto submit/poll, 32 in flight") { offsets in
            try randomReads(auto, fd: fd, offsets: offsets, depth: concurrentTasks)
        })
    }
    variants.append(ColdVariant(name: "NIOFileSystem shared, 32 tasks") { offsets in
        let handle = try nioShared.get()
        return try await concurrentReads(tasks: concurrentTasks, offsets: offsets) { offset, _ in
            try await handle.readChunk(fromAbsoluteOffset: offset, length: .bytes(4096)).readableBytes
        }
    })
    variants.append(ColdVariant(name: "NIOFileSystem 32 threads, 32 tasks") { offsets in
        let handle = try nio32.get()
        return try await concurrentReads(tasks: concurrentTasks, offsets: offsets) { offset, _ in
            try await handle.readChunk(fromAbsoluteOffset: offset, length: .bytes(4096)).readableBytes
        }
    })
    for kind in [BackendKind.uring, .threads] {
        guard let laio = try? Context(backend: kind) else { continue }
        variants.append(ColdVariant(name: "\(kind) perform, 32 tasks") { offsets in
            try await concurrentReads(tasks: concurrentTasks, offsets: offsets) { offset, buffer in
                try await laio.perform(.pread(fd: fd, buffer: buffer, offset: offset))
            }
        })
    }
    // The same tasks on Context.executor: each on a context of its own, since a context's
    // executor reaps for every task of that context.
    for kind in [BackendKind.auto, .uring] {
        guard let laio = try? Context(backend: kind) else { continue }
        let executor = laio.executor
        variants.append(ColdVariant(name: "\(kind) executor perform, 32 tasks") { offsets in
            try await concurrentReads(tasks: concurrentTasks, offsets: offsets, on: executor) { offset, buffer in
                try await laio.perform(.pread(fd: fd, buffer: buffer, offset: offset))
            }
        })
    }
    let rates = variants.map { metric("\($0.name) reads/s") }
    // What bounds a variant on two cores: the thread hand-offs each read costs.
    let switches = variants.map {
        BenchmarkMetric.custom("\($0.name) context switches per 100 reads", polarity: .prefersSmaller, useScalingFactor: false)
    }
    // Ratios in percent (the harness's figures are integers), taken within each iteration.
    let ratios: [(BenchmarkMetric, numerator: String, denominator: String)] = [
        (metric("perform / NIOFileSystem shared %"), "auto perform, 32 tasks", "NIOFileSystem shared, 32 tasks"),
        (metric("perform / NIOFileSystem 32 threads %"), "auto perform, 32 tasks", "NIOFileSystem 32 threads, 32 tasks"),
        (metric("perform / submit-poll %"), "auto perform, 32 tasks", "auto submit/poll, 32 in flight"),
        (metric("executor perform / submit-poll %"), "auto executor perform, 32 tasks", "auto submit/poll, 32 in flight"),
        (metric("uring executor perform / submit-poll %"), "uring executor perform, 32 tasks", "auto submit/poll, 32 in flight"),
    ]
    let configuration = Benchmark.Configuration(metrics: rates + ratios.map(\.0) + switches, warmupIterations: 0,
                                                maxDuration: .seconds(90), maxIterations: 7)
    var iteration: UInt64 = 0
    Benchmark("cold random 4 KiB reads, 32 concurrent, side by side", configuration: configuration) { benchmark async throws in
        iteration += 1
        let offsets = randomOffsets(count: coldReadsPerBatch, fileSize: file.size, seed: iteration * 7919 + 32)
        var measured: [String: Double] = [:]
        var switched: [String: Int] = [:]
        for step in 0..<variants.count {
            let variant = variants[(step + Int(iteration)) % variants.count]
            try file.dropCache()
            let before = processContextSwitches()
            let rate = try await variant.run(offsets)
            switched[variant.name] = (processContextSwitches() - before) * 100 / offsets.count
            measured[variant.name] = rate
        }
        for (metric, variant) in zip(switches, variants) { benchmark.measurement(metric, switched[variant.name] ?? 0) }
        for (metric, variant) in zip(rates, variants) { benchmark.measurement(metric, Int(measured[variant.name] ?? 0)) }
        for (metric, numerator, denominator) in ratios {
            if let top = measured[numerator], let bottom = measured[denominator], bottom > 0 {
                benchmark.measurement(metric, Int((top / bottom * 100).rounded()))
            }
        }
    } setup: {
        pool32.start()
        try await nioShared.open(coldPath, in: .shared)
        try await nio32.open(coldPath, in: FileSystem(threadPool: pool32))
        // The same access advice as LAIO's descriptor: no readahead around a random read.
        for box in [nioShared, nio32] {
            try await box.get().withUnsafeDescriptor { descriptor in
                _ = posix_fadvise(descriptor.rawValue, 0, 0, POSIX_FADV_RANDOM)
            }
        }
    } teardown: {
        try await nioShared.close()
        try await nio32.close()
        try await pool32.shutdownGracefully()
    }
}
