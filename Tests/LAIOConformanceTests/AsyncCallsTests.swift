#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Testing

/// The conformance suite's calls in their async forms (`perform` and the typed
/// conveniences), on every backend: the same answers as `submit` gives, through `await`.
@Suite("Async: the calls")
struct AsyncCallsTests {
    @Test("pwrite, pread, write and read of a file through the conveniences", arguments: allBackends)
    func fileRoundTrip(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        try await withTemporaryDirectoryAsync { directory in
            let path = FilePath("\(directory)/data")
            let fd = try await laio.open(path, .readWrite, options: [.create, .exclusiveCreate, .closeOnExec],
                                         permissions: [.ownerReadWrite])
            let bytes = pattern(count: 10_000, seed: 7)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 10_000, alignment: 16)
            defer { buffer.deallocate() }
            buffer.copyBytes(from: bytes)
            #expect(try await laio.write(to: fd, at: 0, from: UnsafeRawBufferPointer(buffer)) == 10_000)
            #expect(try await laio.write(to: fd, from: UnsafeRawBufferPointer(rebasing: buffer[0..<100])) == 100)
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            #expect(try await laio.read(from: fd, at: 4_000, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<1_000])) == 1_000)
            #expect(Array(buffer[0..<1_000]) == Array(bytes[4_000..<5_000]))
            // write(2) wrote at the position (0), so the file's first 100 bytes are unchanged
            // and the position is 100 now.
            #expect(try await laio.read(from: fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<50])) == 50)
            #expect(Array(buffer[0..<50]) == Array(bytes[100..<150]))
            #expect(try await laio.read(from: fd, at: 20_000, into: buffer) == 0)
            let status = try await laio.stat(fd)
            #expect(status.st_size == 10_000)
            #expect(status.st_mode & S_IFMT == S_IFREG)
            // Closed through LAIO (its number is not looked at again: tests run in parallel
            // and another may have it by now).
            try await laio.close(fd)
        }
    }

    @Test("open and stat by path: errors, resolve flags, symbolic links", arguments: allBackends)
    func paths(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        try await withTemporaryDirectoryAsync { directory in
            try writeFile("\(directory)/file", pattern(count: 123))
            #expect(symlink("file", "\(directory)/link") == 0)
            #expect(symlink("/etc/passwd", "\(directory)/escape") == 0)
            #expect(try await laio.stat(FilePath("\(directory)/link")).st_size == 123)
            #expect(try await laio.stat(FilePath("\(directory)/link"), followingSymlinks: false).st_mode & S_IFMT == S_IFLNK)
            await #expect(throws: Errno.noSuchFileOrDirectory) { _ = try await laio.stat(FilePath("\(directory)/missing")) }
            await #expect(throws: Errno.noSuchFileOrDirectory) {
                _ = try await laio.open(FilePath("\(directory)/missing"), .readOnly)
            }
            let dir = try await laio.open(FilePath(directory), .readOnly, options: [.directory, .closeOnExec])
            defer { _ = Glibc.close(dir.rawValue) }
            #expect(try await laio.stat("file", relativeTo: dir).st_size == 123)
            let inside = try await laio.open("link", .readOnly, resolve: .beneath, relativeTo: dir)
            #expect(try await laio.stat(inside).st_size == 123)
            try await laio.close(inside)
            await #expect(throws: Errno.improperLink) {
                _ = try await laio.open("escape", .readOnly, resolve: .beneath, relativeTo: dir)
            }
            await #expect(throws: Errno.improperLink) {
                _ = try await laio.open("../", .readOnly, options: .directory, resolve: .beneath, relativeTo: dir)
            }
            await #expect(throws: Errno.tooManySymbolicLinkLevels) {
                _ = try await laio.open("link", .readOnly, resolve: .noSymlinks, relativeTo: dir)
            }
        }
    }

    @Test("a read of a cold file goes to the disk and comes back right", arguments: allBackends)
    func coldRead(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        let file = try makeFile("async-cold", bytes: 1 << 20)
        defer { unlink(file.path) }
        let fd = try FileDescriptor.open(FilePath(file.path), .readOnly)
        defer { try? fd.close() }
        _ = posix_fadvise(fd.rawValue, 0, 0, POSIX_FADV_DONTNEED)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 4096)
        defer { buffer.deallocate() }
        for offset in stride(from: 0, to: 1 << 20, by: 65_536).reversed() {
            #expect(try await laio.read(from: fd, at: Int64(offset), into: buffer) == 65_536)
            #expect(Array(buffer[0..<64]) == Array(file.content[offset..<offset + 64]))
        }
    }

    @Test("bad descriptors and bad arguments give their errno", arguments: allBackends)
    func errors(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
        defer { buffer.deallocate() }
        // Above RLIMIT_NOFILE (20,000 here, 1,024 by default), so never another test's
        // descriptor: tests run in parallel and hold thousands.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let bad = FileDescriptor(rawValue: Int32(clamping: max(limit.rlim_cur, 1 << 20) &+ 1))
        await #expect(throws: Errno.badFileDescriptor) { _ = try await laio.read(from: bad, into: buffer) }
        await #expect(throws: Errno.badFileDescriptor) { _ = try await laio.write(to: bad, from: UnsafeRawBufferPointer(buffer)) }
        await #expect(throws: Errno.badFileDescriptor) { try await laio.close(bad) }
        let (r, w) = try makePipe()
        defer { close(r); close(w) }
        // pwrite(2) of a pipe is ESPIPE; io_uring writes the pipe's stream instead (it
        // ignores the offset of a file without a position), which `auto` corrects and `uring` leaves as the kernel's.
        if kind != .uring {
            await #expect(throws: Errno.illegalSeek) {
                _ = try await laio.write(to: FileDescriptor(rawValue: w), at: 0, from: UnsafeRawBufferPointer(buffer))
            }
        }
        switch kind.expectedGetpid {
        case let .success(pid):
            #expect(try await laio.perform(.syscall(number: SyscallNumber.getpid)) == pid)
        case let .failure(error):
            await #expect(throws: error) { _ = try await laio.perform(.syscall(number: SyscallNumber.getpid)) }
        }
    }

    @Test("accept, connect, send and receive over loopback", arguments: allBackends)
    func sockets(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        let (listener, address) = try makeListener()
        defer { close(listener) }
        let client = FileDescriptor(rawValue: socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0))
        defer { try? client.close() }
        let addressBox = UnsafeMutablePointer<sockaddr_in>.allocate(capacity: 1)
        defer { addressBox.deallocate() }
        addressBox.initialize(to: address)
        // Accepting first on the backends that can wait (the blocking one would block here,
        // so it connects first: the backlog holds the connection).
        let accepted: FileDescriptor
        if kind == .blocking {
            try await laio.connect(client, to: UnsafePointer(OpaquePointer(addressBox)), length: socklen_t(MemoryLayout<sockaddr_in>.size))
            accepted = try await laio.accept(FileDescriptor(rawValue: listener), flags: Int32(SOCK_CLOEXEC.rawValue))
        } else {
            async let acceptance = laio.accept(FileDescriptor(rawValue: listener), flags: Int32(SOCK_CLOEXEC.rawValue))
            try await laio.connect(client, to: UnsafePointer(OpaquePointer(addressBox)), length: socklen_t(MemoryLayout<sockaddr_in>.size))
            accepted = try await acceptance
        }
        defer { try? accepted.close() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        buffer.copyBytes(from: Array("ping".utf8))
        #expect(try await laio.send(to: client, from: UnsafeRawBufferPointer(rebasing: buffer[0..<4]), flags: Int32(MSG_NOSIGNAL)) == 4)
        #expect(try await laio.receive(from: accepted, into: UnsafeMutableRawBufferPointer(rebasing: buffer[8..<16])) == 4)
        #expect(Array(buffer[8..<12]) == Array("ping".utf8))
        // End of file for the peer, without closing (the deferred close is the only one:
        // a second close could hit another test's descriptor that reused the number).
        #expect(shutdown(client.rawValue, Int32(SHUT_WR)) == 0)
        #expect(try await laio.receive(from: accepted, into: buffer) == 0)
    }

    @Test("a connect to a port nobody listens on is refused", arguments: allBackends)
    func connectRefused(_ kind: BackendKind) async throws {
        let laio = try makeContext(kind)
        // A port that was just free: bound, then closed.
        let (listener, address) = try makeListener()
        close(listener)
        let client = FileDescriptor(rawValue: socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0))
        defer { try? client.close() }
        let addressBox = UnsafeMutablePointer<sockaddr_in>.allocate(capacity: 1)
        defer { addressBox.deallocate() }
        addressBox.initialize(to: address)
        await #expect(throws: Errno.connectionRefused) {
            try await laio.connect(client, to: UnsafePointer(OpaquePointer(addressBox)), length: socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
}

/// `withTemporaryDirectory` for async bodies.
func withTemporaryDirectoryAsync<T>(_ body: (String) async throws -> T) async throws -> T {
    var template = Array("/tmp/laio-test-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp: \(Errno(rawValue: errno))") }
    let path = String(cString: made)
    defer { _ = system("rm -rf '\(path)'") }
    return try await body(path)
}
