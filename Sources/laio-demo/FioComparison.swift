#if canImport(Glibc)
import Glibc
#endif
import LAIO

/// `laio-demo --fio`: cold random 4 KiB reads with 1, 8 and 32 in flight, through every
/// LAIO backend and through fio's io_uring, psync and posixaio engines, on the same file
/// with its pages dropped before every run. fio keeps `depth` reads in flight with
/// `--iodepth` (io_uring, posixaio) or with `depth` jobs of one read each (psync, which
/// blocks). The peers and backends alternate within each run; each figure is the median of
/// `--runs` runs, each ratio the median of the per-run ratios to fio's io_uring (psync when
/// io_uring cannot be used here).
func fioComparison(_ options: Options) throws {
    let reads = options.quick ? 2_000 : 8_000
    let depths = [1, 8, 32]
    let file = try TestFile(path: "\(options.directory)/laio-demo-cold.dat", size: 1024 << 20)
    guard let version = try? shell("fio --version").first else {
        throw DemoError("fio is not installed (apt-get install fio)")
    }
    let engines = ["io_uring", "psync", "posixaio"]
    var contexts: [(BackendKind, Context)] = []
    var unavailable: [String] = []
    for kind in options.backends {
        do { contexts.append((kind, try Context(backend: kind))) } catch { unavailable.append("\(kind): \(error)") }
    }
    defer { for (_, laio) in contexts { laio.close() } }
    print("laio-demo --fio: \(reads) random 4 KiB reads per run in a \(file.size >> 20) MiB file, pages dropped before")
    print("every run; \(options.runs) run(s), medians; \(version) with --ioengine=io_uring and posixaio at --iodepth=D,")
    print("psync with D jobs. LAIO keeps D reads in flight (blocking completes each one inline, so 1).\n")

    let fd = try file.open()
    defer { close(fd) }
    _ = posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM)  // as fio does for random reads: no readahead
    let columns = engines.map { "fio \($0)" } + contexts.map { "LAIO \($0.0)" }
    var rows: [[String]] = []
    var failures: [String: String] = [:]
    for depth in depths {
        var figures: [String: [Double]] = [:]
        for run in 0..<options.runs {
            progress("\(depth) in flight, run \(run + 1) of \(options.runs)")
            for engine in engines {
                try file.dropCache()
                do {
                    let psync = engine == "psync"
                    figures["fio \(engine)", default: []].append(try fioRandomReads(
                        path: file.path, engine: engine, jobs: psync ? depth : 1, depth: psync ? 1 : depth, reads: reads))
                } catch {
                    failures["fio \(engine)"] = "\(error)"
                }
            }
            let offsets = randomOffsets(count: reads, fileSize: file.size, seed: 1000 + UInt64(run) * 31 + UInt64(depth))
            for (kind, laio) in contexts {
                try file.dropCache()
                figures["LAIO \(kind)", default: []].append(try randomReads(laio, fd: fd, offsets: offsets, depth: depth))
            }
        }
        var row = ["\(depth)"] + columns.map { figures[$0].map { format(median($0)) } ?? "-" }
        if let ours = figures["LAIO auto"] {
            // Per-run ratios to fio's io_uring engine, or to psync where io_uring cannot run.
            let ratios = zip(ours, figures[referenceName(failures)] ?? []).map { $0 / $1 }
            row.append(ratios.isEmpty ? "-" : format(median(ratios), 2))
        }
        rows.append(row)
    }
    let ratioColumn = contexts.contains { $0.0 == .auto } ? ["auto / \(referenceName(failures))"] : []
    printTable(["in flight"] + columns.map { "\($0) reads/s" } + ratioColumn, rows,
               title: "Cold random 4 KiB reads against fio")
    for (name, reason) in failures.sorted(by: { $0.key < $1.key }) { print("not measured: \(name): \(reason)") }
    for line in unavailable { print("not measured: \(line)") }
    for (kind, laio) in contexts where kind == .auto {
        print("auto: \(laio.details); pread: \(laio.route(for: .pread))")
        if let statistics = laio.statistics { print("auto's counts: \(statistics)") }
    }
}

/// The peer auto's ratio is taken to: fio's io_uring engine, or psync when it failed here.
func referenceName(_ failures: [String: String]) -> String {
    failures["fio io_uring"] == nil ? "fio io_uring" : "fio psync"
}
