// laio-demo: runs the same workloads on every backend and prints a comparison table.
//
//   laio-demo [--backend all|auto|uring|threads|blocking] [--quick] [--runs N]
//             [--dir DIR] [--tune | --fio] [--json FILE] [--list-backends] [--kernel-report]
//             [--blocked-calls N]
//
// Workloads: cached 4 KiB preads (against pread(2) in the same run), cold random 4 KiB
// reads with 32 in flight (pages dropped with POSIX_FADV_DONTNEED before each run) and
// pipe round trips through an echo thread. Each figure is the median of --runs runs.
// --tune sweeps the thread pool's lazy window and worker count instead; --fio compares
// cold random reads through every backend with fio's engines at 1, 8 and 32 in flight (see
// FioComparison.swift). --json FILE also writes the tables printed, for reports.
// --blocked-calls N prints what N calls blocked at once cost (BlockedCalls.swift).
// --list-backends prints the backend words, one per line, for scripts. --kernel-report
// prints what the running kernel gives each backend (KernelReport.swift).
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LAIO
import LAIOArguments

/// What to measure, from the command line.
struct Options {
    var backends: [BackendKind] = BackendKind.allCases
    var quick = false
    var runs = 5
    var directory = "/var/tmp"
    var tune = false
    var fio = false
    var json: String?
}

/// laio-demo's command line.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "laio-demo",
        abstract: "Runs the same workloads on every backend and prints a comparison table.",
        discussion: """
            Cached 4 KiB preads (against pread(2) in the same run), cold random 4 KiB reads with 32 in flight \
            and pipe round trips through an echo thread; each figure is the median of --runs runs.
            """)

    @Option(help: ArgumentHelp("The backends to measure.", valueName: "all|word"))
    var backend = BackendChoice.all

    @Flag(help: "Fewer calls per run, and 3 runs unless --runs is given.")
    var quick = false

    @Option(help: ArgumentHelp("Runs per figure (default: 5, or 3 with --quick).", valueName: "n"))
    var runs: Int?

    @Option(name: .customLong("dir"), help: ArgumentHelp("Where the test files live.", valueName: "dir"))
    var directory = "/var/tmp"

    @Flag(help: "Sweep the thread pool's lazy window, idle spin and worker count instead.")
    var tune = false

    @Flag(help: "Compare cold random reads through every backend with fio's engines at 1, 8 and 32 in flight instead.")
    var fio = false

    @Option(help: ArgumentHelp("Also write the tables printed to FILE, as JSON.", valueName: "file"))
    var json: String?

    @Flag(help: "Print the backend words, one per line, and exit.")
    var listBackends = false

    @Option(help: ArgumentHelp("Print what N calls blocked at once cost on each backend (memory, threads, submit time), and exit.", valueName: "n"))
    var blockedCalls: Int?

    @Flag(help: "Print the kernel's release, each backend's setup and routes, and the share of cached reads in --dir completed synchronously, and exit.")
    var kernelReport = false

    func validate() throws {
        if let runs, runs <= 0 { throw ValidationError("--runs needs a positive number") }
    }

    var options: Options {
        Options(backends: backend.kinds, quick: quick, runs: runs ?? (quick ? 3 : 5), directory: directory,
                tune: tune, fio: fio, json: json)
    }
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

func format(_ value: Double, _ digits: Int = 0) -> String {
    guard value.isFinite else { return "-" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return digits == 0 ? String(Int(rounded)) : String(rounded)
}

/// The tables printed so far, for --json. Only the main thread prints tables.
nonisolated(unsafe) var printedTables: [(title: String, header: [String], rows: [[String]])] = []

func printTable(_ header: [String], _ rows: [[String]], title: String = "") {
    printedTables.append((title, header, rows))
    let widths = header.indices.map { column in
        max(header[column].count, rows.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0) + 2
    }
    print(header.enumerated().map { pad($1, widths[$0]) }.joined())
    print(widths.map { String(repeating: "-", count: $0 - 1) + " " }.joined())
    for row in rows { print(row.enumerated().map { pad($1, widths[$0]) }.joined()) }
}

func progress(_ message: String) {
    printError("  \(message)")
}

func compare(_ options: Options) throws {
    let cachedCalls = options.quick ? 5_000 : 20_000
    let coldReads = options.quick ? 1_000 : 3_000
    let roundTrips = options.quick ? 2_000 : 5_000
    let cachedFile = try TestFile(path: "\(options.directory)/laio-demo-cached.dat", size: 64 << 20)
    let coldFile = try TestFile(path: "\(options.directory)/laio-demo-cold.dat", size: 1024 << 20)
    try cachedFile.warm()
    let cachedFD = try cachedFile.open()
    let coldFD = try coldFile.open()
    defer { close(cachedFD); close(coldFD) }
    _ = posix_fadvise(coldFD, 0, 0, POSIX_FADV_RANDOM)  // no readahead: each read is one 4 KiB I/O
    let cachedOffsets = randomOffsets(count: cachedCalls, fileSize: cachedFile.size)
    let coldOffsets = randomOffsets(count: coldReads, fileSize: coldFile.size, seed: 42)

    print("laio-demo: \(options.runs) runs per figure, medians; cached: \(cachedCalls) preads of 4 KiB in a warm 64 MiB file;")
    print("cold: \(coldReads) random 4 KiB reads, 32 in flight, in a \(coldFile.size >> 20) MiB file with its pages dropped before each run;")
    print("pipe: \(roundTrips) one-byte round trips through an echo thread.\n")

    var rows: [[String]] = []
    var unavailable: [String] = []
    var setups: [String] = []
    var routes: [String] = []
    var rawCached: [Double] = [], rawCold: [Double] = [], rawPipe: [Double] = []
    progress("raw system calls")
    for _ in 0..<options.runs {
        rawCached.append(rawCachedReads(fd: cachedFD, offsets: cachedOffsets))
        try coldFile.dropCache()
        rawCold.append(rawRandomReads(fd: coldFD, offsets: coldOffsets))
        rawPipe.append(try pipeRoundTrips(nil, count: roundTrips))
    }
    let rawCachedMedian = median(rawCached), rawColdMedian = median(rawCold)
    rows.append(["raw syscall", format(rawCachedMedian), "1.00", "100", format(rawColdMedian) + " (1 in flight)", "1.00", format(median(rawPipe), 1)])

    for kind in options.backends {
        let laio: Context
        do {
            laio = try Context(backend: kind)
        } catch {
            unavailable.append("\(kind): \(error)")
            continue
        }
        progress("backend \(kind)")
        setups.append("\(kind): \(laio.details)")
        var cached: [Double] = [], synchronous: [Double] = [], cold: [Double] = [], pipes: [Double] = []
        for _ in 0..<options.runs {
            let figures = try cachedReads(laio, fd: cachedFD, offsets: cachedOffsets)
            // pread(2) again right after, so each ratio compares neighbours in time.
            let raw = rawCachedReads(fd: cachedFD, offsets: cachedOffsets)
            cached.append(figures.nanosecondsPerCall / raw)
            synchronous.append(figures.synchronousFraction)
            try coldFile.dropCache()
            cold.append(try randomReads(laio, fd: coldFD, offsets: coldOffsets, depth: 32))
            pipes.append(try pipeRoundTrips(laio, count: roundTrips))
        }
        if let statistics = laio.statistics {
            routes.append("\(kind): pread: \(laio.route(for: .pread)); read: \(laio.route(for: .read)); sendfile: \(laio.route(for: .sendfile))")
            routes.append("\(kind) counts over all runs: \(statistics)")
        }
        let ratio = median(cached)
        rows.append([kind.rawValue, format(ratio * rawCachedMedian), format(ratio, 2), format(median(synchronous) * 100),
                     format(median(cold)), format(median(cold) / rawColdMedian, 2), format(median(pipes), 1)])
        laio.close()
    }
    printTable(["backend", "cached pread ns/call", "vs raw", "sync %", "cold reads/s", "vs raw", "pipe RTT us"], rows,
               title: "Backends on cached reads, cold reads and pipes")
    print("\n'vs raw' for cached reads is the median of per-run ratios to pread(2) measured right after each run.")
    for line in setups { print("setup of \(line)") }
    for line in routes { print("routes of \(line)") }
    for line in unavailable { print("not measured: \(line)") }
}

func tune(_ options: Options) throws {
    let cachedFile = try TestFile(path: "\(options.directory)/laio-demo-cached.dat", size: 64 << 20)
    let coldFile = try TestFile(path: "\(options.directory)/laio-demo-cold.dat", size: 1024 << 20)
    try cachedFile.warm()
    let cachedFD = try cachedFile.open(), coldFD = try coldFile.open()
    defer { close(cachedFD); close(coldFD) }
    _ = posix_fadvise(coldFD, 0, 0, POSIX_FADV_RANDOM)
    let cachedOffsets = randomOffsets(count: options.quick ? 5_000 : 20_000, fileSize: cachedFile.size)
    let coldOffsets = randomOffsets(count: options.quick ? 1_000 : 3_000, fileSize: coldFile.size, seed: 7)

    let defaults = ThreadPoolSettings()
    let pipeTrips = options.quick ? 1_000 : 3_000
    func microseconds(_ duration: Duration) -> String { "\(duration.nanoseconds / 1000) us" }
    print("Thread pool sweeps, one setting varied at a time from the defaults (\(defaults.minimumWorkers) workers kept, growing on demand,")
    print("lazy window \(microseconds(defaults.lazyWindow)), idle spin \(microseconds(defaults.idleSpin))); medians of \(options.runs) runs.")
    print("Cached: 4 KiB pread in a warm file; cold: random 4 KiB reads, 32 in flight, pages dropped first.\n")

    func measure(_ settings: ThreadPoolSettings) throws -> [String] {
        let laio = try Context(backend: .threads, threads: settings)
        defer { laio.close() }
        var perCall: [Double] = [], ratio: [Double] = [], synchronous: [Double] = [], pipes: [Double] = [], cold: [Double] = []
        for _ in 0..<options.runs {
            try coldFile.dropCache()
            cold.append(try randomReads(laio, fd: coldFD, offsets: coldOffsets, depth: 32))
            let figures = try cachedReads(laio, fd: cachedFD, offsets: cachedOffsets)
            perCall.append(figures.nanosecondsPerCall)
            ratio.append(figures.nanosecondsPerCall / rawCachedReads(fd: cachedFD, offsets: cachedOffsets))
            synchronous.append(figures.synchronousFraction)
            pipes.append(try pipeRoundTrips(laio, count: pipeTrips))
        }
        return [format(median(perCall)), format(median(ratio), 2), format(median(synchronous) * 100),
                format(median(pipes), 1), format(median(cold))]
    }
    let header = ["cached pread ns/call", "vs raw", "sync %", "pipe RTT us", "cold reads/s"]

    /// One table: `setting` takes each of `values` in turn, everything else stays default.
    func sweep(_ setting: String, _ values: [Int], unit: String,
               _ apply: (inout ThreadPoolSettings, Int) -> Void) throws {
        var rows: [[String]] = []
        for value in values {
            var settings = defaults
            apply(&settings, value)
            rows.append(["\(value)\(unit)"] + (try measure(settings)))
        }
        printTable([setting] + header, rows)
        print("")
    }
    try sweep("lazy window", [0, 2, 5, 10, 20, 50], unit: " us") { $0.lazyWindow = .microseconds($1) }
    try sweep("idle spin", [0, 10, 20, 50, 200], unit: " us") { $0.idleSpin = .microseconds($1) }
    try sweep("minimum workers", [1, 2, 4, 8, 16, 32], unit: "") { $0.minimumWorkers = $1 }
}

/// Writes `printedTables` as JSON: [{"title": ..., "header": [...], "rows": [[...]]}].
func writeTables(to path: String) throws {
    func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
    func list(_ items: [String]) -> String { "[" + items.joined(separator: ", ") + "]" }
    let tables = printedTables.map { table in
        "{\"title\": \(quoted(table.title)), \"header\": \(list(table.header.map(quoted))), \"rows\": "
            + list(table.rows.map { list($0.map(quoted)) }) + "}"
    }
    let text = list(tables) + "\n"
    guard let file = fopen(path, "w") else { throw DemoError("cannot write \(path): \(String(cString: strerror(errno)))") }
    defer { fclose(file) }
    guard fputs(text, file) >= 0 else { throw DemoError("cannot write \(path)") }
}

let command = DemoCommand.parseCommandLine()
if command.listBackends {
    for kind in BackendKind.allCases { print(kind.rawValue) }
    exit(0)
}
if let count = command.blockedCalls {
    do {
        try blockedCallsReport(count: count)
    } catch {
        printError("laio-demo: \(error)")
        exit(1)
    }
    exit(0)
}
if command.kernelReport {
    do {
        try kernelReport(directory: command.directory, reads: 2_000)
    } catch {
        printError("laio-demo: \(error)")
        exit(1)
    }
    exit(0)
}
do {
    let options = command.options
    if options.tune { try tune(options) } else if options.fio { try fioComparison(options) } else { try compare(options) }
    if let path = options.json { try writeTables(to: path) }
} catch {
    printError("laio-demo: \(error)")
    exit(1)
}
