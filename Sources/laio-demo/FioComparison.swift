#if canImport(Glibc)
import Glibc
#endif
import LAIO

/// `laio-demo --fio`: cold random 4 KiB reads through `auto` against fio on the same file,
/// alternating run by run, with the file's pages dropped before every run. With io_uring
/// available the peer is fio's io_uring engine at iodepth 32; when io_uring cannot be used
/// (for example under tools/no-io-uring) it is fio's psync engine with 32 jobs, and `auto`
/// runs on its thread pool. Both keep 32 reads in flight.
func fioComparison(_ options: Options) throws {
    let reads = options.quick ? 5_000 : 20_000
    let file = try TestFile(path: "\(options.directory)/laio-demo-cold.dat", size: 1024 << 20)
    guard let version = try? shell("fio --version").first else {
        throw DemoError("fio is not installed (apt-get install fio)")
    }
    let laio = try Context(backend: .auto)
    let peer = laio.uringUnavailableReason == nil
        ? (engine: "io_uring", jobs: 1, depth: 32)
        : (engine: "psync", jobs: 32, depth: 1)
    print("laio-demo --fio: \(reads) random 4 KiB reads per run in a \(file.size >> 20) MiB file, 32 in flight, pages dropped")
    print("before every run; \(options.runs) runs, alternating \(version) (\(peer.engine), \(peer.jobs) job(s), iodepth \(peer.depth))")
    print("and LAIO auto. auto: \(laio.details)\n")

    let fd = try file.open()
    defer { close(fd) }
    _ = posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM)  // as fio does for random reads: no readahead
    // Without io_uring, auto's pool parks idle workers at once; the default pool (idle
    // workers spin 20 µs) runs beside it to show what that choice is worth.
    let spinning = laio.uringUnavailableReason == nil ? nil : try Context(backend: .auto, threads: ThreadPoolSettings())
    var rows: [[String]] = []
    var ratios: [Double] = [], ours: [Double] = [], theirs: [Double] = [], spinningRatios: [Double] = []
    for run in 0..<options.runs {
        progress("run \(run + 1) of \(options.runs)")
        try file.dropCache()
        let fio = try fioRandomReads(path: file.path, engine: peer.engine, jobs: peer.jobs, depth: peer.depth, reads: reads)
        try file.dropCache()
        let offsets = randomOffsets(count: reads, fileSize: file.size, seed: 1000 + UInt64(run))
        let auto = try randomReads(laio, fd: fd, offsets: offsets, depth: 32)
        ours.append(auto)
        theirs.append(fio)
        ratios.append(auto / fio)
        rows.append(["\(run + 1)", format(fio), format(auto), format(auto / fio, 2)])
        if let spinning {
            try file.dropCache()
            let other = try randomReads(spinning, fd: fd, offsets: offsets, depth: 32)
            spinningRatios.append(other / fio)
            rows[rows.count - 1].append(format(other / fio, 2))
        }
    }
    rows.append(["median", format(median(theirs)), format(median(ours)), format(median(ratios), 2)]
                 + (spinning == nil ? [] : [format(median(spinningRatios), 2)]))
    printTable(["run", "fio \(peer.engine) reads/s", "LAIO auto reads/s", "auto / fio"]
               + (spinning == nil ? [] : ["auto, pool spinning 20 µs / fio"]), rows)
    print("\nThe median ratio is the median of the per-run ratios.")
    print("auto's routes for this workload: pread: \(laio.route(for: .pread))")
    if let statistics = laio.statistics { print("auto's counts: \(statistics)") }
}

/// Runs fio's random-read job and returns its reads per second.
func fioRandomReads(path: String, engine: String, jobs: Int, depth: Int, reads: Int) throws -> Double {
    let command = "fio --name=cold --filename=\(path) --readonly --rw=randread --bs=4k --ioengine=\(engine)"
        + " --iodepth=\(depth) --numjobs=\(jobs) --thread --number_ios=\(reads / jobs) --norandommap --randrepeat=0"
        + " --invalidate=1 --group_reporting --output-format=terse --terse-version=3"
    // Terse version 3: field 8 (index 7) is the read IOPS of the group.
    for line in try shell(command) where line.hasPrefix("3;") {
        let fields = line.split(separator: ";", omittingEmptySubsequences: false)
        if fields.count > 7, let iops = Double(fields[7]), iops > 0 { return iops }
    }
    throw DemoError("fio gave no read IOPS (command: \(command))")
}

/// Runs `command` with /bin/sh and returns its standard output's lines; throws if it fails.
func shell(_ command: String) throws -> [String] {
    guard let pipe = popen(command + " 2>/dev/null", "r") else { throw DemoError("cannot run \(command)") }
    var output = ""
    var line = [CChar](repeating: 0, count: 4096)
    while fgets(&line, Int32(line.count), pipe) != nil {
        output += String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    let status = pclose(pipe)
    guard status == 0 else { throw DemoError("'\(command)' failed (status \(status))") }
    return output.split(separator: "\n").map(String.init)
}
