#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims
import LAIO
import LAIOCore
import LAIOTestSupport
import LAIOUring
import Testing

@Suite("io_uring backend", .enabled(if: Backends.starts(.uring), Comment(rawValue: Backends.unavailableReason(.uring))))
struct UringTests {
    @Test("at least 99% of 10,000 cached 4 KiB preads complete synchronously, with the right bytes")
    func cachedReadsAreSynchronous() throws {
        let (path, content) = try makeFile("cached", bytes: 4 << 20, seed: 1)
        defer { unlink(path) }
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let laio = try Context(backend: .uring)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { buffer.deallocate() }
        let blocks = content.count / 4096
        var synchronous = 0, wrong = 0
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<10_000 {
            let block = Int.random(in: 0..<blocks, using: &generator)
            switch try laio.submit(.pread(fd: fd, buffer: buffer, offset: Int64(block * 4096))) {
            case .completed(let result):
                synchronous += 1
                if result != .success(4096) || !buffer.elementsEqual(content[block * 4096..<(block + 1) * 4096]) { wrong += 1 }
            case .inProgress(let handle):
                let results = try collect([handle], in: laio)
                if results[handle] != .success(4096) || !buffer.elementsEqual(content[block * 4096..<(block + 1) * 4096]) {
                    wrong += 1
                }
            }
        }
        print("uring: \(synchronous) of 10000 cached preads synchronous")
        #expect(wrong == 0)
        #expect(synchronous >= 9_900)
    }

    @Test("a read of pages just dropped returns the right bytes, however it completes")
    func coldRead() throws {
        let (path, content) = try makeFile("cold", bytes: 1 << 20, seed: 2)
        defer { unlink(path) }
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        #expect(fsync(fd) == 0)  // dirty pages cannot be dropped
        let laio = try Context(backend: .uring)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { buffer.deallocate() }
        var ways: [String] = []
        for block in [0, 97, 200] {
            #expect(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0)
            let result: Result<Int, Errno>
            switch try laio.submit(.pread(fd: fd, buffer: buffer, offset: Int64(block * 4096))) {
            case .completed(let r):
                ways.append("synchronous")
                result = r
            case .inProgress(let handle):
                ways.append("in progress")
                result = try collect([handle], in: laio)[handle] ?? .failure(.canceled)
            }
            #expect(result == .success(4096))
            #expect(buffer.elementsEqual(content[block * 4096..<(block + 1) * 4096]))
        }
        print("uring: cold reads completed as \(ways)")
    }

    @Test("stat, lstat and fstat through STATX equal the libc calls byte for byte")
    func statMatchesLibc() throws {
        let (path, _) = try makeFile("stat", bytes: 54_321, seed: 3)
        defer { unlink(path) }
        let link = path + ".link"
        #expect(symlink(path, link) == 0)
        defer { unlink(link) }
        let laio = try Context(backend: .uring)
        let got = UnsafeMutablePointer<stat>.allocate(capacity: 1)
        defer { got.deallocate() }
        func same(_ expected: stat, _ label: String) {
            var expected = expected
            let equal = withUnsafeBytes(of: &expected) { e in
                UnsafeRawBufferPointer(start: got, count: MemoryLayout<stat>.size).elementsEqual(e)
            }
            #expect(equal, "\(label): \(got.pointee) != \(expected)")
        }
        for target in [path, "/var/tmp", "/dev/null", link] {
            var reference = stat()
            #expect(stat(target, &reference) == 0)
            got.initialize(to: stat())
            memset(got, 0xa5, MemoryLayout<stat>.size)
            try target.withCString { p throws in
                #expect(try complete(.stat(path: p, buffer: got), in: laio) == .success(0))
            }
            same(reference, "stat \(target)")

            #expect(lstat(target, &reference) == 0)
            memset(got, 0xa5, MemoryLayout<stat>.size)
            try target.withCString { p throws in
                #expect(try complete(.newfstatat(dirfd: AT_FDCWD, path: p, buffer: got, flags: AT_SYMLINK_NOFOLLOW), in: laio) == .success(0))
            }
            same(reference, "lstat \(target)")

            let fd = open(target, O_RDONLY)
            defer { close(fd) }
            #expect(fstat(fd, &reference) == 0)
            memset(got, 0xa5, MemoryLayout<stat>.size)
            #expect(try complete(.fstat(fd: fd, buffer: got), in: laio) == .success(0))
            same(reference, "fstat \(target)")
        }
        // Descriptors without a path: a pipe and a socket.
        let pipeFDs = try makePipe()
        defer { close(pipeFDs.0); close(pipeFDs.1) }
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socketFD) }
        for fd in [pipeFDs.0, socketFD] {
            var reference = stat()
            #expect(fstat(fd, &reference) == 0)
            memset(got, 0xa5, MemoryLayout<stat>.size)
            #expect(try complete(.fstat(fd: fd, buffer: got), in: laio) == .success(0))
            same(reference, "fstat of descriptor \(fd)")
        }
        // The raw numbers take the same path.
        var reference = stat()
        #expect(stat(path, &reference) == 0)
        memset(got, 0xa5, MemoryLayout<stat>.size)
        try path.withCString { p throws in
            let arguments = SyscallArguments(Int(bitPattern: p), Int(bitPattern: got))
            #expect(try complete(.syscall(number: Int(LAIO_SYS_stat), arguments: arguments), in: laio) == .success(0))
        }
        same(reference, "SYS_stat")
        #expect(try complete(.fstat(fd: -1, buffer: got), in: laio) == .failure(.badFileDescriptor))
        try "/no/such/file".withCString { p throws in
            #expect(try complete(.stat(path: p, buffer: got), in: laio) == .failure(.noSuchFileOrDirectory))
        }
    }

    @Test("many times more operations in flight than completion-ring entries: none is lost")
    func completionRingOverflow() throws {
        let settings = UringSettings(entries: 4, completionEntries: 8)
        let laio = try Context(backend: .uring, uring: settings)
        // 400 timeouts that expire together, 50 times the completion ring.
        var handles = Set<Handle>()
        for _ in 0..<400 {
            guard case let .inProgress(handle) = try laio.submit(.nanosleep(.milliseconds(20))) else {
                Issue.record("a 20 ms sleep completed synchronously")
                continue
            }
            handles.insert(handle)
        }
        usleep(100_000)  // let every timer fire before anyone reaps
        let results = try collect(handles, in: laio)
        #expect(results.values.allSatisfy { $0 == .success(0) })

        // The same with pipes: 100 blocked reads, then all the writes at once.
        var pipes: [(Int32, Int32)] = []
        defer { for (r, w) in pipes { close(r); close(w) } }
        let buffers = UnsafeMutableRawBufferPointer.allocate(byteCount: 100, alignment: 1)
        defer { buffers.deallocate() }
        var readers: [Handle: Int] = [:]
        for i in 0..<100 {
            let fds = try makePipe()
            pipes.append(fds)
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffers[i..<i + 1])
            guard case let .inProgress(handle) = try laio.submit(.read(fd: fds.0, buffer: slice)) else {
                Issue.record("a read of an empty pipe completed synchronously")
                continue
            }
            readers[handle] = i
        }
        for (i, (_, w)) in pipes.enumerated() {
            var byte = UInt8(i)
            #expect(write(w, &byte, 1) == 1)
        }
        let read = try collect(Set(readers.keys), in: laio)
        #expect(read.values.allSatisfy { $0 == .success(1) })
        #expect((0..<100).allSatisfy { buffers[$0] == UInt8($0) })
        #expect(laio.outstandingCount == 0)
    }

    @Test("the bound on io_uring's file workers is set for the ring, refused out of range, and said in details")
    func fileWorkers() throws {
        let queue = try CompletionQueue(capacity: 16)
        let bounded = try UringBackend(settings: UringSettings(maximumFileWorkers: 96), completions: queue)
        defer { bounded.shutdown() }
        guard case let .set(workers, previous) = bounded.fileWorkers else {
            Issue.record("IORING_REGISTER_IOWQ_MAX_WORKERS was refused on this kernel: \(bounded.fileWorkers)")
            return
        }
        #expect(workers == 96 && previous > 0)
        #expect(bounded.details.contains("file workers: up to 96"))
        let kernelDefault = try UringBackend(settings: UringSettings(maximumFileWorkers: nil), completions: queue)
        defer { kernelDefault.shutdown() }
        #expect(kernelDefault.fileWorkers == .kernelDefault)
        #expect(UringSettings().maximumFileWorkers == UringSettings.defaultFileWorkers)
        for bad in [0, -1, UringSettings.fileWorkerLimit + 1] {
            #expect(throws: Errno.invalidArgument) {
                _ = try UringBackend(settings: UringSettings(maximumFileWorkers: bad), completions: queue)
            }
        }
    }

    @Test("the ring takes the first flag set the kernel accepts, and says which")
    func flagLadder() throws {
        let queue = try CompletionQueue(capacity: 16)
        let bogus = UringSetupFlags(rawValue: 1 << 31)
        let ring = try UringBackend(settings: UringSettings(flagLadder: [bogus, [.submitAll], []]), completions: queue)
        #expect(ring.setupFlags == [.submitAll] || ring.setupFlags == [])
        #expect(ring.keepsOverflowingCompletions, "this kernel keeps overflowing completions")
        ring.shutdown()
        #expect(throws: Errno.invalidArgument) {
            _ = try UringBackend(settings: UringSettings(flagLadder: [bogus]), completions: queue)
        }
        #expect(throws: Errno.invalidArgument) {
            _ = try UringBackend(settings: UringSettings(capacity: UringSettings.maximumCapacity + 1), completions: queue)
        }
        #expect(throws: Errno.invalidArgument) {
            _ = try UringBackend(settings: UringSettings(entries: 0), completions: queue)
        }
        // A context is shared by threads: single-issuer rings are refused, not half-supported.
        #expect(throws: Errno.invalidArgument) {
            _ = try UringBackend(settings: UringSettings(flagLadder: [[.singleIssuer, .deferTaskrun], []]), completions: queue)
        }
        // SQPOLL would make its kernel thread the owner of every request; IOPOLL, SQE128 and
        // CQE32 change what the backend lays out or can run: refused too.
        for flag in [UringSetupFlags.sqPoll, .ioPoll, .sqe128, .cqe32] {
            #expect(throws: Errno.invalidArgument) {
                _ = try UringBackend(settings: UringSettings(flagLadder: [flag]), completions: queue)
            }
        }
        let context = try Context(backend: .uring)
        #expect(context.details.contains("flags"))
        print("uring: \(context.details)")
    }

    @Test("calls io_uring has no opcode for fail with ENOSYS; known raw numbers run as their opcodes, null pointers EFAULT")
    func unmappedCalls() throws {
        let laio = try Context(backend: .uring)
        #expect(try complete(.syscall(number: SyscallNumber.getpid), in: laio) == .failure(.noFunction))
        #expect(try complete(.sendfile(outFD: 1, inFD: 0, offset: nil, count: 1), in: laio) == .failure(.noFunction))
        let zero = open("/dev/zero", O_RDONLY)
        defer { close(zero) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
        defer { buffer.deallocate() }
        let raw = SyscallArguments(Int(zero), Int(bitPattern: buffer.baseAddress), 16, 0)
        #expect(try complete(.syscall(number: SyscallNumber.pread64, arguments: raw), in: laio) == .success(16))
        // A null buffer with a length has no typed form: read runs with it as given and the
        // kernel answers as read(2) does; other known calls with a null pointer answer EFAULT.
        #expect(try complete(.syscall(number: SyscallNumber.read, arguments: SyscallArguments(Int(zero), 0, 16)), in: laio)
                == .failure(.badAddress))
        #expect(read(zero, nil, 16) == -1 && errno == EFAULT)
        #expect(try complete(.syscall(number: SyscallNumber.fstat, arguments: SyscallArguments(Int(zero), 0)), in: laio)
                == .failure(.badAddress))
        // Raw nanosleep runs as a TIMEOUT on the caller's timespec.
        let time = UnsafeMutablePointer<timespec>.allocate(capacity: 1)
        defer { time.deallocate() }
        time.initialize(to: timespec(tv_sec: 0, tv_nsec: 1_000_000))
        #expect(try complete(.syscall(number: SyscallNumber.nanosleep, arguments: SyscallArguments(Int(bitPattern: time))), in: laio)
                == .success(0))
    }

    @Test("at capacity submit answers EAGAIN, and recovers once completions are polled")
    func capacity() throws {
        let laio = try Context(backend: .uring, uring: UringSettings(capacity: 8))
        let fds = try makePipe()
        defer { close(fds.0); close(fds.1) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1)
        defer { buffer.deallocate() }
        var handles = Set<Handle>()
        for i in 0..<8 {
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[i..<i + 1])
            if case let .inProgress(handle) = try laio.submit(.read(fd: fds.0, buffer: slice)) { handles.insert(handle) }
        }
        #expect(handles.count == 8)
        #expect(throws: Errno.resourceTemporarilyUnavailable) { try laio.submit(.nanosleep(.milliseconds(1))) }
        #expect(write(fds.1, "12345678", 8) == 8)
        _ = try collect(handles, in: laio)
        #expect(try complete(.nanosleep(.milliseconds(1)), in: laio) == .success(0))
    }

    @Test("a request whose submitting thread exited is issued again by the resubmission thread and reported once, with its real result")
    func submitterThreadExit() throws {
        let laio = try Context(backend: .uring)
        let fds = try makePipe()
        defer { close(fds.0); close(fds.1) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1)
        defer { buffer.deallocate() }
        let address = Int(bitPattern: buffer.baseAddress)  // crosses into the thread as a plain value
        let reader = fds.0
        /// Submits a read of the empty pipe from a thread that then exits.
        func readFromExitedThread() -> Handle? {
            TestThread.run {
                let buffer = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: address), count: 8)
                guard case let .inProgress(handle) = try? laio.submit(.read(fd: reader, buffer: buffer)) else { return nil }
                return handle
            }
        }
        let submitted = try #require(readFromExitedThread())
        // The request waits on its poll; when the data comes, the kernel fails it (ECANCELED,
        // nothing read: its completion would have run on the gone thread). That is not
        // reported: the call runs again from the backend's own thread and reads the data.
        #expect(try laio.poll(maximum: 4, timeout: .milliseconds(50)).isEmpty)
        #expect(write(fds.1, "xyz", 3) == 3)
        let results = try collect([submitted], in: laio)
        #expect(results[submitted] == .success(3))
        #expect(Array(buffer.prefix(3)) == Array("xyz".utf8))
        var entry = pollfd(fd: fds.0, events: Int16(POLLIN), revents: 0)
        #expect(poll(&entry, 1, 0) == 0, "the payload was read once, by the call")

        // Closing with such a request in flight cancels it too, and returns.
        let left = try #require(readFromExitedThread())
        let start = ContinuousClock.now
        laio.close()
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(try laio.poll(maximum: 4, timeout: .zero) == [Completion(handle: left, result: .failure(.canceled))])
    }
}

extension UringTests {
    @Test("inline completions leave the notification descriptor unreadable; ring completions make it readable")
    func notificationDescriptor() throws {
        let laio = try Context(backend: .uring)
        let fd = laio.notificationDescriptor
        func readable() -> Bool {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            return poll(&entry, 1, 0) == 1
        }
        let zero = open("/dev/zero", O_RDONLY)
        defer { close(zero) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { buffer.deallocate() }
        for _ in 0..<100 {
            #expect(try laio.submit(.read(fd: zero, buffer: buffer)) == .completed(.success(64)))
        }
        #expect(!readable(), "inline completions were consumed by submit")
        let fds = try makePipe()
        defer { close(fds.0); close(fds.1) }
        guard case let .inProgress(handle) = try laio.submit(.read(fd: fds.0, buffer: buffer)) else {
            Issue.record("a read of an empty pipe completed synchronously")
            return
        }
        #expect(!readable())
        #expect(write(fds.1, "z", 1) == 1)
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&entry, 1, 5_000) == 1, "a completion in the ring makes it readable")
        #expect(try laio.poll(maximum: 4, timeout: .zero) == [Completion(handle: handle, result: .success(1))])
        #expect(!readable())
    }

    @Test("a poll asleep on the ring wakes when another thread's submit reaps its completion, 100 times")
    func wakeUpThroughAnotherSubmitter() throws {
        let laio = try Context(backend: .uring)
        let fds = try makePipe()
        defer { close(fds.0); close(fds.1) }
        let zero = open("/dev/zero", O_RDONLY)
        defer { close(zero) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 8)
        defer { buffer.deallocate() }
        let address = Int(bitPattern: buffer.baseAddress)  // crosses into the thread as a plain value
        let (reader, writer) = (fds.0, fds.1)
        for round in 0..<100 {
            // A helper thread submits a read of the empty pipe, makes it completable, and
            // submits a call of its own: the kernel posts the read's completion while that
            // submit is in the kernel, and the submit reaps it into the completion queue.
            // This thread is asleep in poll all along and must be woken by the queue.
            let handle = LockBox<Handle?>(nil)
            let helper = TestThread {
                let target = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: address), count: 1)
                usleep(1_000)  // let the poll below go to sleep first
                if case let .inProgress(h) = try? laio.submit(.read(fd: reader, buffer: target)) { handle.withLock { $0 = h } }
                var byte = UInt8(truncatingIfNeeded: round)
                _ = write(writer, &byte, 1)
                let scratch = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: address + 8), count: 8)
                _ = try? laio.submit(.read(fd: zero, buffer: scratch))
                usleep(20_000)  // stay alive until the read is surely reported
            }
            // A lost wake-up shows as a poll that sleeps its whole timeout and only then finds
            // the completion in the queue.
            let start = ContinuousClock.now
            let completions = try laio.poll(maximum: 4, timeout: .seconds(3))
            #expect(ContinuousClock.now - start < .milliseconds(2_500), "round \(round): poll slept through the completion")
            helper.join()
            let submitted = try #require(handle.withLock { $0 }, "round \(round): the read completed synchronously")
            #expect(completions == [Completion(handle: submitted, result: .success(1))], "round \(round)")
            if completions.isEmpty || ContinuousClock.now - start >= .milliseconds(2_500) { return }
        }
    }
}

@Test("a failed io_uring setup names its cause")
func setupFailureMessages() {
    let noKernel = ContextError.setupFailed(.uring, .noFunction).description
    #expect(noKernel.contains("ENOSYS") && noKernel.contains("no io_uring"))
    let blocked = ContextError.setupFailed(.uring, .notPermitted).description
    #expect(blocked.contains("EPERM") && (blocked.contains("seccomp") || blocked.contains("io_uring_disabled")))
    let memlock = ContextError.setupFailed(.uring, .noMemory).description
    #expect(memlock.contains("ENOMEM") && memlock.contains("RLIMIT_MEMLOCK"))
    // Other backends' errors carry no io_uring hint.
    #expect(!ContextError.setupFailed(.threads, .noMemory).description.contains("RLIMIT_MEMLOCK"))
}
