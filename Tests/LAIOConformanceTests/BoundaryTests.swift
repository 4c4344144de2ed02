#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Testing

@Suite("Backpressure and process boundaries")
struct BoundaryTests {
    @Test("at capacity submit answers EAGAIN, and recovers as completions are polled, cycle after cycle",
          arguments: asynchronousBackends)
    func capacity(_ kind: BackendKind) throws {
        let capacity = 8
        let laio = try Context(backend: kind, threads: ThreadPoolSettings(workers: 16, capacity: capacity),
                               uring: UringSettings(capacity: capacity))
        let pipes = try (0...capacity).map { _ in try makePipe() }
        defer { for (r, w) in pipes { close(r); close(w) } }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity + 1, alignment: 1)
        defer { buffer.deallocate() }
        func byte(_ i: Int) -> UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: buffer[i..<i + 1]) }

        for cycle in 0..<50 {
            var handles: [Handle] = []
            for i in 0..<capacity { handles.append(try submitBlockedRead(laio, fd: pipes[i].0, into: byte(i))) }
            #expect(laio.outstandingCount == capacity)
            // Full: the documented answer, and nothing is queued for later.
            #expect(throws: Errno.resourceTemporarilyUnavailable) { try laio.submit(.read(fd: pipes[capacity].0, buffer: byte(capacity))) }
            #expect(laio.outstandingCount == capacity)
            // A finished call frees its credit only once poll hands it out.
            #expect(write(pipes[0].1, "a", 1) == 1)
            #expect(try awaitCompletion(of: handles[0], in: laio) == .success(1), "cycle \(cycle)")
            handles[0] = try submitBlockedRead(laio, fd: pipes[capacity].0, into: byte(capacity))
            #expect(throws: Errno.resourceTemporarilyUnavailable) { try laio.submit(.read(fd: pipes[0].0, buffer: byte(0))) }
            // Load falls to nothing: every call is reported once and the context is empty again.
            for i in 1...capacity { #expect(write(pipes[i].1, "b", 1) == 1) }
            for (handle, result) in try collect(Set(handles), in: laio, timeout: .seconds(10)) {
                #expect(result == .success(1), "cycle \(cycle): \(handle)")
            }
            #expect(laio.outstandingCount == 0)
        }
    }

    @Test("a forked child cannot use the parent's context (EBADF), its close leaves the parent's calls alone, and a context of its own works",
          .disabled(if: underThreadSanitizer, "ThreadSanitizer does not support fork() in a multithreaded process"),
          arguments: allBackends)
    func fork(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 8)
        defer { buffer.deallocate() }
        let parentRead = kind == .blocking ? nil : try submitBlockedRead(laio, fd: r, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<4]))
        let zero = open("/dev/zero", O_RDONLY)
        defer { close(zero) }
        let eight = UnsafeMutableRawBufferPointer(rebasing: buffer[8..<16])

        let child = Glibc.fork()
        if child == 0 {
            // Exit codes name the first check that failed.
            var code: Int32 = 0
            do { _ = try laio.submit(.read(fd: zero, buffer: eight)); code = 10 } catch { if error != .badFileDescriptor { code = 11 } }
            if code == 0 {
                do { _ = try laio.poll(maximum: 1, timeout: .zero); code = 12 } catch { if error != .badFileDescriptor { code = 13 } }
            }
            if code == 0, let parentRead {
                do { try laio.cancel(parentRead); code = 14 } catch { if error != .badFileDescriptor { code = 15 } }
            }
            laio.close()   // must not touch the parent's ring or workers
            if code == 0 {
                if let own = try? Context(backend: kind) {
                    let answer = try? own.submit(.read(fd: zero, buffer: eight))
                    if case .completed(.success(8))? = answer {} else if case let .inProgress(handle)? = answer,
                       let done = try? own.poll(maximum: 1, timeout: .seconds(5)), done.first?.handle == handle,
                       done.first?.result == .success(8) {} else { code = 16 }
                    own.close()
                } else {
                    code = 17
                }
            }
            _exit(code)
        }
        #expect(child > 0)
        // A child that hangs (on workers that did not fork, say) fails the test, not the run.
        guard let status = waitForChild(child, bound: .seconds(20)) else { return }
        #expect(status & 0x7f == 0, "the child died of signal \(status & 0x7f)")
        #expect((status >> 8) & 0xff == 0, "the child's check \((status >> 8) & 0xff) failed")
        // The parent's context is untouched: its read is still outstanding and completes.
        if let parentRead {
            #expect(laio.outstandingCount == 1)
            #expect(write(w, "abcd", 4) == 4)
            #expect(try awaitCompletion(of: parentRead, in: laio) == .success(4))
        }
        #expect(try complete(.read(fd: zero, buffer: eight), in: laio) == .success(8))
    }
}
