#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Testing

/// The threads of this process now (/proc/self/task), except io_uring's own workers
/// (`iou-wrk-…`, `iou-sqp-…`): the kernel makes those for the thread that submitted, not
/// for the context, and on kernels before 6.x's later releases (6.1 in the kernel matrix)
/// the last one stays until that thread exits.
private func threadCount() -> Int {
    guard let directory = opendir("/proc/self/task") else { return -1 }
    defer { closedir(directory) }
    var count = 0
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard name != "." && name != ".." else { continue }
        if !threadName(name).hasPrefix("iou-") { count += 1 }
    }
    return count
}

/// The name (comm) of thread `tid` of this process; empty if it is gone.
private func threadName(_ tid: String) -> String {
    let fd = open("/proc/self/task/\(tid)/comm", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: 32)
    let count = read(fd, &bytes, bytes.count)
    return count > 0 ? String(decoding: bytes[..<count], as: UTF8.self) : ""
}

@Suite("A context's lifetime", .serialized, .enabled(if: forkTestsAlone, Comment(rawValue: forkTestsSkipped)))
struct LifetimeTests {
    /// A pool's workers hold the pool, so its deinit cannot be what ends them: the context's
    /// deinit does (it shuts the backend down, which waits for the workers, as close does).
    /// Runs in a forked child, which has one thread of its own, so that the count is not
    /// disturbed by the other tests' threads. The wait for the threads to go is bounded
    /// only to turn a leak into a failure; it is far above what any machine needs.
    @Test("context-drop-threads (issue 27): a context dropped without close leaves no thread behind",
          .disabled(if: underThreadSanitizer, "ThreadSanitizer does not support fork() in a multithreaded process"),
          arguments: allBackends)
    func droppedContextLeavesNoThreads(_ kind: BackendKind) throws {
        let child = Glibc.fork()
        if child == 0 {
            let before = threadCount()
            do {
                guard let laio = try? Context(backend: kind, threads: ThreadPoolSettings(workers: 4)) else { _exit(1) }
                if kind != .blocking {
                    // A call in the background, reported by poll.
                    guard let (r, w) = try? makePipe() else { _exit(2) }
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
                    guard let handle = try? submitBlockedRead(laio, fd: r, into: buffer) else { _exit(2) }
                    _ = write(w, "x", 1)
                    guard (try? awaitCompletion(of: handle, in: laio, timeout: .seconds(60))) == .success(1) else { _exit(3) }
                    buffer.deallocate()
                    close(r)
                    close(w)
                    if kind == .threads || kind == .auto, threadCount() <= before { _exit(4) }
                }
                // The context goes here, without close.
            }
            let deadline = ContinuousClock.now + .seconds(60)
            while threadCount() > before {
                if ContinuousClock.now >= deadline { _exit(5) }
                usleep(1000)
            }
            _exit(0)
        }
        try #require(child > 0)
        guard let status = waitForChild(child, bound: .seconds(120)) else { return }
        let checks: [Int32: String] = [1: "the context did not start", 2: "the background read", 3: "its completion",
                                       4: "the pool started no threads", 5: "threads were left 60 s after the context went"]
        #expect(status & 0x7f == 0, "the child died of signal \(status & 0x7f)")
        let code = (status >> 8) & 0xff
        #expect(code == 0, "\(checks[code] ?? "check \(code)")")
    }
}
