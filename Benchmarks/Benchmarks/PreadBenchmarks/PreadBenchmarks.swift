// Cost per call of a cached 4 KiB pread through each LAIO backend, next to pread(2) and a
// raw getpid through the generic syscall path, measured by the same harness in one run.
#if canImport(Glibc)
import Glibc
#endif
import Benchmark
import CUringLoop
import LAIO

/// A warm 16 MiB file shared by the benchmarks.
let cachedFile: Int32 = {
    let path = "/var/tmp/laio-bench-cached.dat"
    let fd = open(path, O_RDWR | O_CREAT, 0o644)
    precondition(fd >= 0, "cannot open \(path)")
    var block = [UInt8](repeating: 0x61, count: 1 << 20)
    for i in 0..<16 { _ = block.withUnsafeMutableBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(i << 20)) } }
    var scratch = [UInt8](repeating: 0, count: 1 << 20)
    for i in 0..<16 { _ = scratch.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(i << 20)) } }
    return fd
}()

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput, .mallocCountTotal], maxDuration: .seconds(2))
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)

    Benchmark("pread(2) 4 KiB cached") { benchmark in
        for i in benchmark.scaledIterations {
            blackHole(pread(cachedFile, buffer.baseAddress, 4096, off_t((i & 4095) * 4096)))
        }
    }

    if laio_bench_ring_init() == 0 {
        Benchmark("liburing C submit+peek 4 KiB cached") { benchmark in
            blackHole(laio_bench_ring_pread_loop(cachedFile, buffer.baseAddress, benchmark.scaledIterations.count))
        }
    }

    for kind in BackendKind.allCases {
        guard let laio = try? Context(backend: kind) else { continue }  // listed as absent in the output
        Benchmark("LAIO \(kind) pread 4 KiB cached") { benchmark in
            for i in benchmark.scaledIterations {
                if case .inProgress = try laio.submit(.pread(fd: cachedFile, buffer: buffer, offset: Int64((i & 4095) * 4096))) {
                    // Rare (a call that missed the lazy window); allocation here is not the fast path.
                    _ = try laio.poll(maximum: 1, timeout: nil)
                }
            }
        }
        guard kind != .uring else { continue }  // io_uring has no getpid: ENOSYS would be timed
        Benchmark("LAIO \(kind) raw getpid") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try laio.submit(.syscall(number: SyscallNumber.getpid)))
            }
        }
    }
}
