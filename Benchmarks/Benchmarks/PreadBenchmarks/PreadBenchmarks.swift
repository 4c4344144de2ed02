// Cost per call of a cached 4 KiB pread through each LAIO backend (and, in a loop of its
// own, the share of calls completed synchronously; auto also with parts of its strategy
// switched off), next to pread(2) and liburing in C; a socket recv through
// auto next to recv(2); and a raw getpid through the generic syscall path. One harness,
// one run.
#if canImport(Glibc)
import Glibc
#endif
import Benchmark
import CLinuxShims
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

/// The share of calls that completed synchronously, in percent (more is better).
let synchronousPercent = BenchmarkMetric.custom("synchronous %", polarity: .prefersLarger, useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput, .mallocCountTotal], maxDuration: .seconds(2))
    let synchronousOnly = Benchmark.Configuration(metrics: [synchronousPercent], maxDuration: .seconds(1), maxIterations: 20)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)

    Benchmark("pread(2) 4 KiB cached") { benchmark in
        for i in benchmark.scaledIterations {
            blackHole(pread(cachedFile, buffer.baseAddress, 4096, off_t((i & 4095) * 4096)))
        }
    }

    Benchmark("preadv2(RWF_NOWAIT) 4 KiB cached") { benchmark in
        for i in benchmark.scaledIterations {
            blackHole(laio_shim_pread_nowait(cachedFile, buffer.baseAddress, 4096, Int64((i & 4095) * 4096)))
        }
    }

    if laio_bench_ring_init() == 0 {
        Benchmark("liburing C submit+peek 4 KiB cached") { benchmark in
            blackHole(laio_bench_ring_pread_loop(cachedFile, buffer.baseAddress, benchmark.scaledIterations.count))
        }
    }

    // auto's inline-first path against its routes without it, on the same cached file.
    let variants: [(String, AutoSettings)] = [
        ("auto without inline-first", AutoSettings(inlineFirst: [])),
        ("auto without io_uring", AutoSettings(useUring: false)),
    ]
    for (name, settings) in variants {
        guard let laio = try? Context(backend: .auto, auto: settings) else { continue }
        Benchmark("LAIO \(name) pread 4 KiB cached") { benchmark in
            for i in benchmark.scaledIterations {
                if case .inProgress = try laio.submit(.pread(fd: cachedFile, buffer: buffer, offset: Int64((i & 4095) * 4096))) {
                    _ = try laio.poll(maximum: 1, timeout: nil)
                }
            }
        }
    }

    // A 64-byte message written then received on a loopback socket pair: recv(2) against
    // auto with and without MSG_DONTWAIT first, and uring.
    var pair: [Int32] = [0, 0]
    precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
    let (sender, receiver) = (pair[0], pair[1])
    let message = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
    Benchmark("write + recv(2) 64 B") { benchmark in
        for _ in benchmark.scaledIterations {
            _ = write(sender, message.baseAddress, 64)
            blackHole(recv(receiver, message.baseAddress, 64, 0))
        }
    }
    let receivers: [(String, Context?)] = [
        ("auto", try? Context(backend: .auto)),
        ("auto without inline-first", try? Context(backend: .auto, auto: AutoSettings(inlineFirst: []))),
        ("uring", try? Context(backend: .uring)),
    ]
    for case let (name, laio?) in receivers {
        Benchmark("write + LAIO \(name) recv 64 B") { benchmark in
            for _ in benchmark.scaledIterations {
                _ = write(sender, message.baseAddress, 64)
                if case .inProgress = try laio.submit(.recv(fd: receiver, buffer: message)) {
                    _ = try laio.poll(maximum: 1, timeout: nil)
                }
            }
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
        // The same calls in swift-system's vocabulary: the FileDescriptor form builds the
        // same operation, so it must cost what the raw form costs.
        let descriptor = FileDescriptor(rawValue: cachedFile)
        Benchmark("LAIO \(kind) pread 4 KiB cached, FileDescriptor form") { benchmark in
            for i in benchmark.scaledIterations {
                if case .inProgress = try laio.submit(.read(descriptor, into: buffer, at: Int64((i & 4095) * 4096))) {
                    _ = try laio.poll(maximum: 1, timeout: nil)
                }
            }
        }
        // The share of those calls answered synchronously, counted in a loop of its own so
        // that the counting does not weigh on the timed one above.
        Benchmark("LAIO \(kind) pread 4 KiB cached, synchronous share", configuration: synchronousOnly) { benchmark in
            var synchronous = 0
            for i in 0..<1_000 {
                if case .inProgress = try laio.submit(.pread(fd: cachedFile, buffer: buffer, offset: Int64((i & 4095) * 4096))) {
                    _ = try laio.poll(maximum: 1, timeout: nil)
                } else {
                    synchronous += 1
                }
            }
            benchmark.measurement(synchronousPercent, synchronous / 10)
        }
        guard kind != .uring else { continue }  // io_uring has no getpid: ENOSYS would be timed
        Benchmark("LAIO \(kind) raw getpid") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try laio.submit(.syscall(number: SyscallNumber.getpid)))
            }
        }
    }
}
