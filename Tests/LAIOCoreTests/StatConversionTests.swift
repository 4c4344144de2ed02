#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims
import LAIOCore
import Testing

/// statx(2) of `fd` (AT_EMPTY_PATH) converted by the shim, and fstat(2) of the same file.
private func bothStats(of fd: Int32) throws -> (converted: stat, fstat: stat) {
    // struct statx is 256 bytes; the buffer lives across the call only.
    let raw = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 8)
    defer { raw.deallocate() }
    let result = Operation.statx(dirfd: fd, path: laio_shim_empty_path(), flags: Int32(LAIO_AT_EMPTY_PATH),
                                 mask: UInt32(LAIO_STATX_BASIC_STATS), buffer: raw).run()
    try #require(result == 0, "statx: \(result)")
    var converted = stat()
    laio_shim_statx_to_stat(raw, &converted)
    var direct = stat()
    try #require(fstat(fd, &direct) == 0, "fstat: errno \(errno)")
    return (converted, direct)
}

/// Every byte of two stat records, padding included.
private func bytes(_ record: stat) -> [UInt8] {
    withUnsafeBytes(of: record) { Array($0) }
}

@Suite("statx to stat")
struct StatConversionTests {
    @Test("the conversion gives what fstat(2) gives, byte for byte",
          arguments: ["regular file", "directory", "character device", "pipe", "socket"])
    func sameAsFstat(of what: String) throws {
        var cleanup: [Int32] = []
        defer { for fd in cleanup { close(fd) } }
        let fd: Int32
        switch what {
        case "regular file":
            var template = Array("/tmp/laio-core-stat-XXXXXX".utf8CString)
            fd = mkstemp(&template)
            try #require(fd >= 0)
            unlink(template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
            let content = [UInt8](repeating: 7, count: 10_000)
            try #require(write(fd, content, content.count) == content.count)
        case "directory":
            fd = open("/", O_RDONLY | O_DIRECTORY)
        case "character device":
            // /dev/null's rdev (1, 3) tests the device-number encoding.
            fd = open("/dev/null", O_RDONLY)
        case "pipe":
            var fds: [Int32] = [0, 0]
            try #require(pipe(&fds) == 0)
            cleanup.append(fds[1])
            fd = fds[0]
        default:
            var fds: [Int32] = [0, 0]
            try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
            cleanup.append(fds[1])
            fd = fds[0]
        }
        try #require(fd >= 0, "open: errno \(errno)")
        cleanup.append(fd)
        let (converted, direct) = try bothStats(of: fd)
        #expect(converted.st_dev == direct.st_dev)
        #expect(converted.st_ino == direct.st_ino)
        #expect(converted.st_mode == direct.st_mode)
        #expect(converted.st_rdev == direct.st_rdev)
        #expect(converted.st_size == direct.st_size)
        #expect(bytes(converted) == bytes(direct))
    }

    @Test("a device number with a large minor is encoded as the kernel encodes it")
    func deviceEncoding() throws {
        // The kernel's new_encode_dev for major 259, minor 0x12345: minor's low byte,
        // major above it, the rest of minor above bit 20.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: 256)
        // struct statx: stx_rdev_major at 128, stx_rdev_minor at 132, stx_dev_major at 136,
        // stx_dev_minor at 140 (<linux/stat.h>).
        raw.storeBytes(of: UInt32(259), toByteOffset: 128, as: UInt32.self)
        raw.storeBytes(of: UInt32(0x12345), toByteOffset: 132, as: UInt32.self)
        raw.storeBytes(of: UInt32(8), toByteOffset: 136, as: UInt32.self)
        raw.storeBytes(of: UInt32(1), toByteOffset: 140, as: UInt32.self)
        var converted = stat()
        laio_shim_statx_to_stat(raw, &converted)
        #expect(converted.st_rdev == 0x45 | 259 << 8 | 0x12300 << 12)
        #expect(converted.st_dev == 1 | 8 << 8)
    }

    @Test("fstat that never waits answers as fstat(2) does, where it answers",
          .enabled(if: tmpFstatIsLocal, "/tmp is on a file system whose fstat asks a server (FUSE, NFS)"))
    func cachedFstat() throws {
        var template = Array("/tmp/laio-core-stat-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        defer { close(fd) }
        unlink(template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        var cached = stat()
        let result = laio_shim_fstat_cached(fd, &cached)
        #expect(result == 0)
        var direct = stat()
        #expect(fstat(fd, &direct) == 0)
        #expect(bytes(cached) == bytes(direct))
    }
}

/// Whether fstat of a file in /tmp is answered without asking a server (-EAGAIN where it
/// would have to: FUSE, NFS), so that the cached form can be compared with fstat(2) there.
private let tmpFstatIsLocal: Bool = {
    var template = Array("/tmp/laio-core-stat-probe-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    unlink(template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    var buffer = stat()
    return laio_shim_fstat_cached(fd, &buffer) != -Int(EAGAIN)
}()
