// What an idle context costs: the threads a new context has after its creation, after its
// first synchronous perform and after its first perform that goes to the background (a
// pipe read nobody answers yet), counted in /proc/self/task; and how often those threads
// wake while the context is idle, from their context switches
// (/proc/self/task/TID/status) over a 3 s window: once with that read awaited and
// unanswered, once with nothing in flight. One iteration per backend; the new threads'
// names and switches are printed too.
#if canImport(Glibc)
import Glibc
#endif
import Benchmark
import LAIO

/// The process's threads (task ids).
func threadIDs() -> Set<Int32> {
    guard let directory = opendir("/proc/self/task") else { return [] }
    defer { closedir(directory) }
    var ids: Set<Int32> = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if let id = Int32(name) { ids.insert(id) }
    }
    return ids
}

/// The first line of a /proc/self/task/TID file, or "" if the thread is gone.
func taskFile(_ id: Int32, _ name: String) -> String {
    guard let file = fopen("/proc/self/task/\(id)/\(name)", "r") else { return "" }
    defer { fclose(file) }
    var text = ""
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        text += String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    return text
}

/// Voluntary plus involuntary context switches of thread `id` so far.
func contextSwitches(_ id: Int32) -> Int {
    taskFile(id, "status").split(separator: "\n").reduce(0) { total, line in
        guard line.contains("ctxt_switches:"), let count = line.split(separator: ":").last else { return total }
        return total + (Int(trimmed(count)) ?? 0)
    }
}

/// The context switches of each of `ids` during `seconds` of sleep of the calling thread.
func switchesWhileIdle(of ids: Set<Int32>, seconds: UInt32) -> [Int32: Int] {
    let before = Dictionary(uniqueKeysWithValues: ids.map { ($0, contextSwitches($0)) })
    sleep(seconds)
    return Dictionary(uniqueKeysWithValues: ids.map { ($0, contextSwitches($0) - before[$0]!) })
}

func describe(_ ids: Set<Int32>, switches: [Int32: Int]? = nil) -> String {
    ids.sorted().map { id in
        let name = trimmed(taskFile(id, "comm"))
        return switches.map { "\(name)[\(id)]: \($0[id] ?? 0)" } ?? "\(name)[\(id)]"
    }.joined(separator: ", ")
}

/// `text` without the spaces, tabs and newlines at its ends (Foundation is not imported).
func trimmed<Text: StringProtocol>(_ text: Text) -> String {
    String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
}

func count(_ name: String) -> BenchmarkMetric { .custom(name, polarity: .prefersSmaller, useScalingFactor: false) }

let threadsAtCreation = count("threads added by Context()")
let threadsAtSynchronous = count("threads added by a synchronous perform")
let threadsAtBackground = count("threads added by a background perform")
let wakeUpsAwaiting = count("wake-ups in 3 s idle, one call awaited")
let wakeUpsEmpty = count("wake-ups in 3 s idle, nothing in flight")

func idleCostBenchmark() {
    let configuration = Benchmark.Configuration(
        metrics: [threadsAtCreation, threadsAtSynchronous, threadsAtBackground, wakeUpsAwaiting, wakeUpsEmpty],
        warmupIterations: 0, maxDuration: .seconds(60), maxIterations: 1)
    // Never freed: a read left in flight by a failed iteration may still hold them.
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
    let byte = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
    let shared = SharedBuffer(bytes: byte)
    for kind in [BackendKind.auto, .uring, .threads] {
        Benchmark("idle context: LAIO \(kind)", configuration: configuration) { benchmark async throws in
            var ends: [Int32] = [0, 0]
            guard pipe(&ends) == 0 else { throw DemoError("pipe: \(errno)") }
            defer { close(ends[0]); close(ends[1]) }
            let reader = ends[0]

            let atStart = threadIDs()
            let laio = try Context(backend: kind)
            defer { laio.close() }
            let created = threadIDs().subtracting(atStart)
            _ = try await laio.perform(.pread(fd: cachedFile, buffer: buffer, offset: 0))
            let synchronous = threadIDs().subtracting(atStart)

            // A read of an empty pipe, awaited by a task of its own: it goes to the background.
            let waiting = Task { try await laio.perform(.read(fd: reader, buffer: shared.bytes)) }
            // It has gone once it holds a credit. Bounded only to end a broken run; a
            // background call takes microseconds to get there.
            var looks = 0
            while laio.outstandingCount == 0 && looks < 10_000 { try await Task.sleep(for: .milliseconds(1)); looks += 1 }
            guard laio.outstandingCount > 0 else { throw DemoError("the pipe read did not go to the background") }
            try await Task.sleep(for: .milliseconds(100))  // lets the threads it woke go back to sleep before the window opens
            let background = threadIDs().subtracting(atStart)
            let awaitedSwitches = switchesWhileIdle(of: background, seconds: 3)

            var one: UInt8 = 1
            guard write(ends[1], &one, 1) == 1 else { throw DemoError("write: \(errno)") }
            guard try await waiting.value == 1 else { throw DemoError("the awaited read did not return its byte") }
            try await Task.sleep(for: .milliseconds(100))
            let emptySwitches = switchesWhileIdle(of: background, seconds: 3)

            benchmark.measurement(threadsAtCreation, created.count)
            benchmark.measurement(threadsAtSynchronous, synchronous.count - created.count)
            benchmark.measurement(threadsAtBackground, background.count - synchronous.count)
            benchmark.measurement(wakeUpsAwaiting, awaitedSwitches.values.reduce(0, +))
            benchmark.measurement(wakeUpsEmpty, emptySwitches.values.reduce(0, +))
            print("""
                idle \(kind): new threads after Context(): [\(describe(created))]; \
                after a synchronous perform: [\(describe(synchronous))]; \
                after a background perform: [\(describe(background))]; \
                switches in 3 s with the read awaited: [\(describe(background, switches: awaitedSwitches))]; \
                with nothing in flight: [\(describe(background, switches: emptySwitches))]
                """)
        }
    }
}
