// laio-demo --blocked-calls N: what a call that blocks costs while it waits, per backend.
#if canImport(Glibc)
import Glibc
#endif
import LAIO

/// Puts `count` reads of an empty pipe in flight on every backend that can wait in the
/// background, on a new context, and prints the
/// process's resident memory and threads per blocked call (from /proc/self/statm and
/// /proc/self/status), the pool's workers, and how long submitting them took. Then the
/// pipe is written, every read is reported, and the time the pool takes to shrink back to
/// its minimum (keep-alive 1 s) and its threads to exit is printed too. The resident figure
/// includes each new thread's stack pages, its thread descriptor and the library's share.
func blockedCallsReport(count: Int) throws {
    print("Blocked calls: \(count) one-byte reads of an empty pipe in flight at once, on a new context.")
    print("backend   resident/call  threads/call  workers  submit µs/call  back to the minimum (keep-alive 1 s)")
    for kind in BackendKind.allCases where kind != .blocking {
        let laio: Context
        do {
            laio = try Context(backend: kind, threads: ThreadPoolSettings(keepAlive: .seconds(1)))
        } catch {
            print("\(pad(kind.rawValue, 10))unavailable: \(error)")
            continue
        }
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else { throw DemoError("pipe: \(String(cString: strerror(errno)))") }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
        // The buffer outlives every read: each round is collected before the next, and
        // close reports what is left before it is freed.
        defer {
            laio.close()
            buffer.deallocate()
            close(descriptors[0]); close(descriptors[1])
        }
        func round() throws -> (residentKiB: Int, threads: Int, nanoseconds: Int64) {
            var pending = Set<Handle>()
            let start = ContinuousClock.now
            for index in 0..<count {
                let one = UnsafeMutableRawBufferPointer(rebasing: buffer[index..<index + 1])
                guard case let .inProgress(handle) = try laio.submit(.read(fd: descriptors[0], buffer: one)) else {
                    throw DemoError("a read of an empty pipe completed at once on \(kind)")
                }
                pending.insert(handle)
            }
            let elapsed = ContinuousClock.now - start
            let figures = (residentKiB(), threadCount(), elapsed.nanoseconds)
            let bytes = [UInt8](repeating: 1, count: count)
            guard write(descriptors[1], bytes, count) == count else { throw DemoError("write to the pipe") }
            var completions: [Completion] = []
            while !pending.isEmpty {
                completions.removeAll(keepingCapacity: true)
                _ = try laio.poll(into: &completions, maximum: 256, timeout: .seconds(60))
                for completion in completions { pending.remove(completion.handle) }
            }
            return figures
        }
        let minimum = laio.poolWorkers?.live ?? 0
        let idleThreads = threadCount()
        /// Seconds until the pool is back at its minimum and its threads have exited (at most 20 s).
        func shrink() -> Double {
            let start = ContinuousClock.now
            while (laio.poolWorkers?.live ?? 0) > minimum || threadCount() > idleThreads,
                  ContinuousClock.now - start < .seconds(20) {
                usleep(10_000)
            }
            return Double((ContinuousClock.now - start).nanoseconds) / 1e9
        }
        let baseline = (residentKiB(), idleThreads)
        let loaded = try round()
        let shrinkSeconds = laio.poolWorkers == nil ? nil : shrink()
        let perCall = (loaded.residentKiB - baseline.0) * 1024 / count
        let threadsPerCall = (loaded.threads - baseline.1) * 100 / count
        let workers = laio.poolWorkers.map { "\($0.peak)" } ?? "-"
        let shrunk = shrinkSeconds.map { "\(Int($0 * 10) / 10).\(Int($0 * 10) % 10) s" } ?? "-"
        let submitNanoseconds = Int(loaded.nanoseconds) / count
        print(pad(kind.rawValue, 10) + pad("\(perCall / 1024).\(perCall % 1024 * 10 / 1024) KiB", 15)
              + pad("\(threadsPerCall / 100).\(threadsPerCall % 100 / 10)\(threadsPerCall % 10)", 14) + pad(workers, 9)
              + pad("\(submitNanoseconds / 1000).\(submitNanoseconds % 1000 / 100)", 16) + shrunk)
    }
}

/// The process's resident memory in KiB (/proc/self/statm).
private func residentKiB() -> Int {
    guard let fields = readProc("/proc/self/statm")?.split(separator: " "), fields.count > 1,
          let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
}

/// The process's threads (/proc/self/status).
private func threadCount() -> Int {
    guard let status = readProc("/proc/self/status") else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("Threads:") {
        return Int(line.dropFirst("Threads:".count).filter { $0 != " " && $0 != "\t" }) ?? 0
    }
    return 0
}

private func readProc(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: 4096)
    let count = read(fd, &bytes, bytes.count)
    return count > 0 ? String(decoding: bytes[..<count], as: UTF8.self) : nil
}
