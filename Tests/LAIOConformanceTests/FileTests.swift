#if canImport(Glibc)
import Glibc
#endif
import LAIO
import LAIOTestSupport
import Testing

@Suite("Files")
struct FileTests {
    @Test("cached reads give the right bytes", arguments: allBackends)
    func cachedReads(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        try withTemporaryDirectory { dir in
            let content = pattern(count: 64 * 1024)
            try writeFile("\(dir)/data", content)
            let fd = open("\(dir)/data", O_RDONLY)
            defer { close(fd) }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
            defer { buffer.deallocate() }
            for offset in [0, 4096, 12_345, 60_000] {
                let result = try complete(.pread(fd: fd, buffer: buffer, offset: Int64(offset)), in: laio)
                let expected = min(4096, content.count - offset)
                #expect(result == .success(expected))
                #expect(Array(buffer.prefix(expected)) == Array(content[offset..<offset + expected]))
            }
            // read advances the file position.
            #expect(try complete(.read(fd: fd, buffer: buffer), in: laio) == .success(4096))
            #expect(Array(buffer) == Array(content[0..<4096]))
            #expect(try complete(.read(fd: fd, buffer: buffer), in: laio) == .success(4096))
            #expect(Array(buffer) == Array(content[4096..<8192]))
            // Vectored reads fill each buffer in turn.
            let halves = [UnsafeMutableRawBufferPointer(rebasing: buffer[0..<1000]),
                          UnsafeMutableRawBufferPointer(rebasing: buffer[1000..<4096])]
            let iovecs = halves.map { iovec(iov_base: $0.baseAddress, iov_len: $0.count) }
            try iovecs.withUnsafeBufferPointer { iov throws in
                #expect(try complete(.preadv(fd: fd, iovecs: iov, offset: 100), in: laio) == .success(4096))
                #expect(Array(buffer) == Array(content[100..<4196]))
                #expect(try complete(.readv(fd: fd, iovecs: iov), in: laio) == .success(4096))
                #expect(Array(buffer) == Array(content[8192..<12288]))
            }
            // At the end of the file a read returns 0.
            #expect(try complete(.pread(fd: fd, buffer: buffer, offset: 1 << 20), in: laio) == .success(0))
        }
    }

    @Test("write then read back", arguments: allBackends)
    func writeThenRead(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        try withTemporaryDirectory { dir in
            let fd = open("\(dir)/out", O_RDWR | O_CREAT | O_TRUNC, 0o644)
            defer { close(fd) }
            let first = pattern(count: 5000, seed: 1), second = pattern(count: 3000, seed: 2)
            let third = pattern(count: 2000, seed: 3)
            try first.withUnsafeBytes { bytes throws in
                #expect(try complete(.write(fd: fd, buffer: bytes), in: laio) == .success(5000))
            }
            try second.withUnsafeBytes { bytes throws in
                #expect(try complete(.pwrite(fd: fd, buffer: bytes, offset: 10_000), in: laio) == .success(3000))
            }
            try third.withUnsafeBytes { bytes throws in
                let iov = [iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: 1500),
                           iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress! + 1500), iov_len: 500)]
                try iov.withUnsafeBufferPointer { iov throws in
                    #expect(try complete(.pwritev(fd: fd, iovecs: iov, offset: 20_000), in: laio) == .success(2000))
                    #expect(try complete(.writev(fd: fd, iovecs: iov), in: laio) == .success(2000))
                }
            }
            #expect(try complete(.fsync(fd: fd), in: laio) == .success(0))
            #expect(try complete(.fdatasync(fd: fd), in: laio) == .success(0))

            var back = [UInt8](repeating: 0, count: 22_000)
            let got = back.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            #expect(got == 22_000)
            #expect(Array(back[0..<5000]) == first)
            #expect(Array(back[5000..<7000]) == third)  // writev continued at the file position
            #expect(Array(back[10_000..<13_000]) == second)
            #expect(Array(back[20_000..<22_000]) == third)
        }
    }

    @Test("stat, fstat, newfstatat and statx agree with libc", arguments: allBackends)
    func statFamily(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        try withTemporaryDirectory { dir in
            let path = "\(dir)/file"
            try writeFile(path, pattern(count: 12_345))
            var reference = stat()
            #expect(fstatat(AT_FDCWD, path, &reference, 0) == 0)

            func expectSame(_ got: stat, _ label: String) {
                #expect(got.st_dev == reference.st_dev, "\(label) st_dev")
                #expect(got.st_ino == reference.st_ino, "\(label) st_ino")
                #expect(got.st_mode == reference.st_mode, "\(label) st_mode")
                #expect(got.st_nlink == reference.st_nlink, "\(label) st_nlink")
                #expect(got.st_uid == reference.st_uid && got.st_gid == reference.st_gid, "\(label) owner")
                #expect(got.st_size == 12_345, "\(label) st_size")
                #expect(got.st_blocks == reference.st_blocks, "\(label) st_blocks")
                #expect(got.st_mtim.tv_sec == reference.st_mtim.tv_sec
                        && got.st_mtim.tv_nsec == reference.st_mtim.tv_nsec, "\(label) st_mtim")
            }
            // The buffers outlive each call, as the operation's memory must.
            let st = UnsafeMutablePointer<stat>.allocate(capacity: 1)
            defer { st.deallocate() }
            try path.withCString { cpath throws in
                st.initialize(to: stat())
                #expect(try complete(.stat(path: cpath, buffer: st), in: laio) == .success(0))
                expectSame(st.pointee, "stat")
                st.initialize(to: stat())
                let fd = open(path, O_RDONLY)
                defer { close(fd) }
                #expect(try complete(.fstat(fd: fd, buffer: st), in: laio) == .success(0))
                expectSame(st.pointee, "fstat")
                st.initialize(to: stat())
                let dirfd = open(dir, O_RDONLY | O_DIRECTORY)
                defer { close(dirfd) }
                try "file".withCString { name throws in
                    #expect(try complete(.newfstatat(dirfd: dirfd, path: name, buffer: st), in: laio) == .success(0))
                }
                expectSame(st.pointee, "newfstatat")

                // struct statx is fixed by the kernel ABI: stx_mode at 28, stx_ino at 32, stx_size at 40.
                let statxBuffer = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 8)
                defer { statxBuffer.deallocate() }
                let STATX_BASIC_STATS: UInt32 = 0x7ff
                #expect(try complete(.statx(dirfd: AT_FDCWD, path: cpath, flags: 0, mask: STATX_BASIC_STATS, buffer: statxBuffer), in: laio) == .success(0))
                #expect(statxBuffer.load(fromByteOffset: 28, as: UInt16.self) == UInt16(reference.st_mode))
                #expect(statxBuffer.load(fromByteOffset: 32, as: UInt64.self) == UInt64(reference.st_ino))
                #expect(statxBuffer.load(fromByteOffset: 40, as: UInt64.self) == 12_345)
            }
            // A missing path fails the way the kernel says.
            try "\(dir)/missing".withCString { missing throws in
                #expect(try complete(.stat(path: missing, buffer: st), in: laio) == .failure(.noSuchFileOrDirectory))
            }
        }
    }

    @Test("openat, open and close", arguments: allBackends)
    func openAndClose(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        try withTemporaryDirectory { dir in
            let content = pattern(count: 100)
            try writeFile("\(dir)/a", content)
            let dirfd = open(dir, O_RDONLY | O_DIRECTORY)
            defer { close(dirfd) }
            let opened = try "a".withCString { try complete(.openat(dirfd: dirfd, path: $0, flags: O_RDONLY), in: laio) }
            let fd = Int32(try opened.get())
            var before = stat()
            #expect(fstat(fd, &before) == 0)
            var bytes = [UInt8](repeating: 0, count: 200)
            #expect(bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 200) } == 100)
            #expect(Array(bytes[0..<100]) == content)
            #expect(try complete(.close(fd: fd), in: laio) == .success(0))
            // The number is free again, or (tests run in parallel in this process) already
            // reused by another open; either way it no longer refers to this file.
            var after = stat()
            let refersToFile = fstat(fd, &after) == 0 && after.st_ino == before.st_ino && after.st_dev == before.st_dev
            #expect(!refersToFile, "descriptor \(fd) still open on the file after close")

            let created = try "\(dir)/new".withCString {
                try complete(.open(path: $0, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600), in: laio)
            }
            let newFD = Int32(try created.get())
            var st = stat()
            #expect(fstat(newFD, &st) == 0 && st.st_mode & 0o777 == 0o600)
            #expect(try complete(.close(fd: newFD), in: laio) == .success(0))
            let again = try "\(dir)/new".withCString {
                try complete(.open(path: $0, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600), in: laio)
            }
            #expect(again == .failure(Errno(rawValue: EEXIST)))
        }
    }

    @Test("openat2 with RESOLVE_BENEATH opens inside its directory and refuses escapes", arguments: allBackends)
    func openat2Beneath(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        try withTemporaryDirectory { dir in
            try writeFile("\(dir)/inside", pattern(count: 10))
            #expect(mkdir("\(dir)/root", 0o700) == 0)
            #expect(symlink("../inside", "\(dir)/root/up") == 0)          // escapes upward
            #expect(symlink("\(dir)/inside", "\(dir)/root/absolute") == 0)  // absolute
            try writeFile("\(dir)/root/file", pattern(count: 7))
            #expect(symlink("file", "\(dir)/root/sibling") == 0)           // stays beneath
            #expect(mkfifo("\(dir)/root/fifo", 0o600) == 0)
            let root = open("\(dir)/root", O_RDONLY | O_DIRECTORY)
            defer { close(root) }
            // Both with and without O_NONBLOCK (auto tries the former inline, with RESOLVE_CACHED).
            for flags in [O_RDONLY | O_CLOEXEC, O_RDONLY | O_CLOEXEC | O_NONBLOCK] {
                var how = OpenHow(flags: flags, resolve: .beneath)
                func open2(_ path: String) throws -> Result<Int, Errno> {
                    // `how` and the path outlive the call: complete() waits for the completion.
                    try withUnsafePointer(to: &how) { how in
                        try path.withCString { try complete(.openat2(dirfd: root, path: $0, how: how), in: laio) }
                    }
                }
                for path in ["file", "sibling"] {
                    let fd = Int32(try open2(path).get())
                    var st = stat()
                    #expect(fstat(fd, &st) == 0 && st.st_size == 7, "\(path)")
                    close(fd)
                }
                for path in ["../inside", "up", "absolute", "/etc/passwd"] {
                    #expect(try open2(path) == .failure(Errno(rawValue: EXDEV)), "\(path)")
                }
                #expect(try open2("missing") == .failure(.noSuchFileOrDirectory))
                #expect(try open2("file/x") == .failure(Errno(rawValue: ENOTDIR)))
                if flags & O_NONBLOCK != 0 {
                    // A FIFO without a writer opens at once for reading with O_NONBLOCK.
                    let fifo = Int32(try open2("fifo").get())
                    #expect(fcntl(fifo, F_GETFL) & O_NONBLOCK != 0)
                    close(fifo)
                }
            }
        }
    }

    @Test("unlinkat, renameat and mkdirat", arguments: allBackends)
    func directoryOperations(_ kind: BackendKind) throws {
        let laio = try makeContext(kind)
        try withTemporaryDirectory { dir in
            let dirfd = open(dir, O_RDONLY | O_DIRECTORY)
            defer { close(dirfd) }
            #expect(try "sub".withCString { try complete(.mkdirat(dirfd: dirfd, path: $0, mode: 0o755), in: laio) } == .success(0))
            var st = stat()
            #expect(fstatat(AT_FDCWD, "\(dir)/sub", &st, 0) == 0 && st.st_mode & S_IFMT == S_IFDIR)
            #expect(try "sub".withCString { try complete(.mkdirat(dirfd: dirfd, path: $0, mode: 0o755), in: laio) } == .failure(Errno(rawValue: EEXIST)))

            try writeFile("\(dir)/old", [1, 2, 3])
            let renamed = try "old".withCString { old throws in
                try "sub/new".withCString { new throws in
                    try complete(.renameat(oldDirfd: dirfd, oldPath: old, newDirfd: dirfd, newPath: new), in: laio)
                }
            }
            #expect(renamed == .success(0))
            #expect(access("\(dir)/old", F_OK) == -1 && access("\(dir)/sub/new", F_OK) == 0)

            #expect(try "sub/new".withCString { try complete(.unlinkat(dirfd: dirfd, path: $0), in: laio) } == .success(0))
            #expect(access("\(dir)/sub/new", F_OK) == -1)
            #expect(try "sub".withCString { try complete(.unlinkat(dirfd: dirfd, path: $0, flags: AT_REMOVEDIR), in: laio) } == .success(0))
            #expect(access("\(dir)/sub", F_OK) == -1)
            #expect(try "sub".withCString { try complete(.unlinkat(dirfd: dirfd, path: $0), in: laio) } == .failure(.noSuchFileOrDirectory))
        }
    }
}
