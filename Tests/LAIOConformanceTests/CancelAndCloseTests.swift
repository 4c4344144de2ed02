#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Testing

@Suite("Cancel, close and bad input")
struct CancelAndCloseTests {
    @Test("cancel of a blocked read reports ECANCELED exactly once", arguments: asynchronousBackends)
    func cancelBlockedRead(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1)
        defer { buffer.deallocate() }
        let handle = try submitBlockedRead(laio, fd: r, into: buffer)
        try laio.cancel(handle)
        #expect(try awaitCompletion(of: handle, in: laio) == .failure(.canceled))
        // The cancelled read must not consume data written afterwards.
        #expect(Glibc.write(w, "z", 1) == 1)
        try expectNoCompletion(in: laio, within: .milliseconds(100))
        var byte: UInt8 = 0
        #expect(Glibc.read(r, &byte, 1) == 1 && byte == UInt8(ascii: "z"))
        // The handle is gone now.
        #expect(throws: Errno.noSuchFileOrDirectory) { try laio.cancel(handle) }
    }

    @Test("cancel of queued operations behind busy workers", arguments: asynchronousBackends)
    func cancelQueued(_ kind: BackendKind) throws {
        let laio = try makeContext(kind, threads: ThreadPoolSettings(workers: 2))
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        var handles: [Handle] = []
        for i in 0..<8 {
            let handle = try submitBlockedRead(laio, fd: r, into: UnsafeMutableRawBufferPointer(rebasing: buffer[i * 8..<i * 8 + 8]))
            handles.append(handle)
        }
        for handle in handles.reversed() { try laio.cancel(handle) }
        let results = try collect(Set(handles), in: laio, timeout: .seconds(10))
        #expect(results.values.allSatisfy { $0 == .failure(.canceled) })
        try expectNoCompletion(in: laio)
    }

    @Test("cancel racing completion: one report each, ECANCELED or the real result", arguments: asynchronousBackends)
    func cancelRacingCompletion(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let rounds = 300
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: rounds, alignment: 1)
        defer { buffer.deallocate() }
        var outcomes = (cancelled: 0, completed: 0)
        var bytesRead = 0
        for i in 0..<rounds {
            let one = UnsafeMutableRawBufferPointer(rebasing: buffer[i..<i + 1])
            let handle: Handle
            switch try laio.submit(.read(fd: r, buffer: one)) {
            case .completed(let result):
                // A byte left behind by an earlier cancelled read is read at once.
                #expect(result == .success(1))
                outcomes.completed += 1
                bytesRead += 1
                _ = Glibc.write(w, "q", 1)
                continue
            case .inProgress(let h):
                handle = h
            }
            // Write and cancel back to back, sometimes in the other order.
            if i % 2 == 0 { _ = Glibc.write(w, "q", 1) }
            do { try laio.cancel(handle) } catch { #expect(error == .noSuchFileOrDirectory) }
            if i % 2 == 1 { _ = Glibc.write(w, "q", 1) }
            switch try awaitCompletion(of: handle, in: laio) {
            case .success(let n): outcomes.completed += 1; bytesRead += n; #expect(n == 1)
            case .failure(let e): outcomes.cancelled += 1; #expect(e == .canceled)
            }
        }
        #expect(outcomes.cancelled + outcomes.completed == rounds)
        // Every byte written is either read by a completed call or still in the pipe.
        var left = 0
        var scratch = [UInt8](repeating: 0, count: rounds)
        _ = fcntl(r, F_SETFL, O_NONBLOCK)
        let n = scratch.withUnsafeMutableBytes { Glibc.read(r, $0.baseAddress, rounds) }
        if n > 0 { left = n }
        #expect(bytesRead + left == rounds, "read \(bytesRead), left \(left)")
        try expectNoCompletion(in: laio)
    }

    @Test("cancel of an unknown or already reported handle is ENOENT", arguments: allBackends)
    func cancelUnknown(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        #expect(throws: Errno.noSuchFileOrDirectory) { try laio.cancel(Handle(rawValue: 0)) }
        #expect(throws: Errno.noSuchFileOrDirectory) { try laio.cancel(Handle(rawValue: 0xDEAD_BEEF_0000_0007)) }
        #expect(throws: Errno.noSuchFileOrDirectory) { try laio.cancel(Handle(rawValue: .max)) }
        guard kind != .blocking else { return }
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let byte = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
        defer { byte.deallocate() }
        let handle = try submitBlockedRead(laio, fd: r, into: byte)
        _ = Glibc.write(w, "k", 1)
        #expect(try awaitCompletion(of: handle, in: laio) == .success(1))
        #expect(throws: Errno.noSuchFileOrDirectory) { try laio.cancel(handle) }
    }

    @Test("bad input gets the kernel's error and harms nothing", arguments: allBackends)
    func badInput(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        #expect(try complete(.read(fd: 99_999, buffer: buffer), in: laio) == .failure(.badFileDescriptor))
        #expect(try complete(.pread(fd: -1, buffer: buffer, offset: 0), in: laio) == .failure(.badFileDescriptor))
        #expect(try complete(.close(fd: 99_999), in: laio) == .failure(.badFileDescriptor))
        #expect(try complete(.syscall(number: 100_000), in: laio) == .failure(.noFunction))
        #expect(try complete(.syscall(number: -5), in: laio) == .failure(.noFunction))
        // A known call whose arguments no typed form holds (statx into a null buffer, its
        // fifth argument) gets the kernel's EFAULT, not ENOSYS.
        try "/".withCString { path throws in
            let arguments = SyscallArguments(Int(AT_FDCWD), Int(bitPattern: path), 0, 0x7ff, 0)
            #expect(try complete(.syscall(number: SyscallNumber.statx, arguments: arguments), in: laio) == .failure(.badAddress))
        }
        // A positioned read or write of a pipe has no position to use: ESPIPE, nothing consumed.
        // io_uring ignores the offset on streams instead, so `uring` reads or writes the
        // pipe (its one documented difference from the system calls, shown here); `auto`
        // answers ESPIPE (pread by its inline preadv2, pwrite by a pwritev of no vectors first).
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        #expect(Glibc.write(w, "data", 4) == 4)
        var waiting = 4
        let eight = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<8])
        if laio.backendKind == .uring {
            #expect(try complete(.pread(fd: r, buffer: buffer, offset: 0), in: laio) == .success(4))
            #expect(try complete(.pwrite(fd: w, buffer: eight, offset: 0), in: laio) == .success(8))
            waiting = 8
        } else {
            #expect(try complete(.pread(fd: r, buffer: buffer, offset: 0), in: laio) == .failure(Errno(rawValue: ESPIPE)))
            #expect(try complete(.pwrite(fd: w, buffer: eight, offset: 0), in: laio) == .failure(Errno(rawValue: ESPIPE)))
            let vector = [iovec(iov_base: buffer.baseAddress, iov_len: 4)]
            try vector.withUnsafeBufferPointer { iov throws in
                #expect(try complete(.preadv(fd: r, iovecs: iov, offset: 0), in: laio) == .failure(Errno(rawValue: ESPIPE)))
                #expect(try complete(.pwritev(fd: w, iovecs: iov, offset: 0), in: laio) == .failure(Errno(rawValue: ESPIPE)))
            }
        }
        if waiting > 0 {
            #expect(try complete(.read(fd: r, buffer: buffer), in: laio) == .success(waiting), "nothing else was consumed or written")
        }
        try withTemporaryDirectory { dir in
            try writeFile("\(dir)/f", pattern(count: 100))
            let fd = open("\(dir)/f", O_RDWR)
            defer { close(fd) }
            // Each absurd argument gets exactly what the plain system call answers.
            let bogus = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: 0x10), count: 4096)
            #expect(pread(fd, bogus.baseAddress, 4096, 0) == -1 && errno == EFAULT)
            #expect(try complete(.pread(fd: fd, buffer: bogus, offset: 0), in: laio) == .failure(.badAddress))
            #expect(try complete(.pread(fd: fd, buffer: buffer, offset: -1), in: laio) == .failure(.invalidArgument))
            let hugeIov = [iovec(iov_base: buffer.baseAddress, iov_len: 16)]
            try hugeIov.withUnsafeBufferPointer { iov throws in
                let tooMany = UnsafeBufferPointer(start: iov.baseAddress, count: 100_000)  // > IOV_MAX
                #expect(try complete(.readv(fd: fd, iovecs: tooMany), in: laio) == .failure(.invalidArgument))
            }
            #expect(try complete(.fsync(fd: -3), in: laio) == .failure(.badFileDescriptor))
            // The context still works afterwards.
            #expect(try complete(.pread(fd: fd, buffer: buffer, offset: 0), in: laio) == .success(100))
        }
    }

    @Test("calls that would take down a worker are refused with ENOSYS", arguments: asynchronousBackends)
    func unsafeCallsRefused(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        for number in [SyscallNumber.exit, SyscallNumber.exitGroup, SyscallNumber.clone, SyscallNumber.execve] {
            #expect(try complete(.syscall(number: number), in: laio) == .failure(.noFunction), "syscall \(number)")
        }
        #expect(try complete(.syscall(number: SyscallNumber.getpid), in: laio) == kind.expectedGetpid)
    }

    @Test("closing with operations in flight cancels them and keeps the process healthy", arguments: allBackends)
    func closeWithInFlight(_ kind: BackendKind) throws {
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        do {
            let laio = try makeContext(kind)
            var handles = Set<Handle>()
            if kind != .blocking {
                for i in 0..<40 {  // more than the pool's workers, so some are queued
                    let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[i..<i + 1])
                    if case let .inProgress(handle) = try laio.submit(.read(fd: r, buffer: slice)) { handles.insert(handle) }
                }
                #expect(handles.count == 40)
                _ = try laio.submit(.nanosleep(.seconds(30)))
                    .inProgressHandle.map { handles.insert($0) }
            }
            let start = ContinuousClock.now
            laio.close()
            #expect(ContinuousClock.now - start < .seconds(10), "close took \(ContinuousClock.now - start)")
            // Everything is still reported once, as cancelled.
            var seen = Set<Handle>()
            while let batch = try? laio.poll(maximum: 64, timeout: .zero), !batch.isEmpty {
                for completion in batch {
                    #expect(seen.insert(completion.handle).inserted)
                    #expect(completion.result == .failure(.canceled))
                }
            }
            #expect(seen == handles)
            #expect(throws: Errno.badFileDescriptor) { try laio.submit(.syscall(number: SyscallNumber.getpid)) }
            laio.close()  // idempotent
        }
        // No call of the closed context consumes data any more.
        #expect(Glibc.write(w, "abc", 3) == 3)
        var bytes = [UInt8](repeating: 0, count: 8)
        #expect(bytes.withUnsafeMutableBytes { Glibc.read(r, $0.baseAddress, 8) } == 3)
        // A new context works.
        let fresh = try makeContext(kind)
        try expectWorkingCall(in: fresh)
        fresh.close()
    }
}

extension Outcome {
    var inProgressHandle: Handle? {
        if case let .inProgress(handle) = self { return handle }
        return nil
    }
}
