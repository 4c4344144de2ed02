// Cold random 4 KiB reads with 1, 8 and 32 in flight: every LAIO backend against fio's
// io_uring, psync and posixaio engines on the same 1 GiB file, its pages dropped before each
// iteration. The figure is the custom metric "reads/s" (more is better); ColdReads.swift is
// laio-demo's own file, shared through a symlink so both measure the same loop.
#if canImport(Glibc)
import Glibc
#endif
import Benchmark
import LAIO

let readsPerIteration = 4_000
let readsPerSecond = BenchmarkMetric.custom("reads/s", polarity: .prefersLarger, useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [readsPerSecond], warmupIterations: 0,
                                           maxDuration: .seconds(10), maxIterations: 5)
    guard let file = try? TestFile(path: "/var/tmp/laio-demo-cold.dat", size: 1024 << 20),
          let fd = try? file.open() else {
        print("ColdReadBenchmarks: cannot create /var/tmp/laio-demo-cold.dat; nothing measured")
        return
    }
    _ = posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM)  // as fio does for random reads: no readahead
    let fioInstalled = (try? shell("fio --version")) != nil
    if !fioInstalled { print("ColdReadBenchmarks: fio is not installed (apt-get install fio); its engines are not measured") }

    for depth in [1, 8, 32] {
        if fioInstalled {
            for engine in ["io_uring", "psync", "posixaio"] {
                let psync = engine == "psync"
                Benchmark("fio \(engine) cold 4 KiB, \(depth) in flight") { benchmark in
                    try file.dropCache()
                    benchmark.startMeasurement()
                    let rate = try fioRandomReads(path: file.path, engine: engine, jobs: psync ? depth : 1,
                                                  depth: psync ? 1 : depth, reads: readsPerIteration)
                    benchmark.measurement(readsPerSecond, Int(rate))
                }
            }
        }
        for kind in BackendKind.allCases {
            guard let laio = try? Context(backend: kind) else { continue }  // listed as absent in the output
            var iteration: UInt64 = 0
            Benchmark("LAIO \(kind) cold 4 KiB, \(depth) in flight") { benchmark in
                try file.dropCache()
                iteration += 1
                let offsets = randomOffsets(count: readsPerIteration, fileSize: file.size, seed: iteration * 7919 + UInt64(depth))
                benchmark.startMeasurement()
                benchmark.measurement(readsPerSecond, Int(try randomReads(laio, fd: fd, offsets: offsets, depth: depth)))
            }
        }
    }
}
